#!/usr/bin/env bash
# Installs what libtrainrt needs to build, test and run its examples on Debian 12, from
# Debian's packages. Run as root (CI) or through sudo. Extra package names may be given as
# arguments.
set -euo pipefail
packages=(
  cmake ninja-build g++ ccache pkg-config  # toolchain
  libtbb-dev libspdlog-dev libdnnl-dev zlib1g-dev  # libtrainrt's dependencies
  libgtest-dev  # tests
  clang-tidy-14 clang-format-14 libomp-14-dev  # scripts/check-{tidy,format}.sh (pinned: output differs between versions; libomp: clang's omp.h)
  dataset-fashion-mnist  # the example trainer's default data
)
run=()
[ "$(id -u)" -eq 0 ] || run=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -qq
"${run[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" "$@" >/dev/null
echo "install-deps: installed ${packages[*]} $*"
