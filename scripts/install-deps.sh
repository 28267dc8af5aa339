#!/usr/bin/env bash
# Installs what libtrainrt needs to build, test and run its examples on Debian 12, from
# Debian's packages. Run as root (CI) or through sudo. Extra package names may be given as
# arguments.
set -euo pipefail
packages=(
  cmake ninja-build g++ ccache pkg-config  # toolchain
  libtbb-dev libspdlog-dev libdnnl-dev zlib1g-dev  # libtrainrt's dependencies
  libgtest-dev doxygen  # tests (doxygen: the docs.doxygen test of the API reference)
  libopenmpi-dev openmpi-bin  # trainrt::mpi, the MPI communicator (optional), and its tests
  clang-16 libclang-rt-16-dev libomp-16-dev  # scripts/check-sanitizers.sh: sanitizers, libFuzzer (clang 15+ for std::source_location)
  clang-tidy-16 clang-format-14  # scripts/check-{tidy,format}.sh (pinned: output differs between versions)
  dataset-fashion-mnist  # the example trainer's default data
  fortunes fortunes-min  # the default text corpus (trainrt::text::kDefaultCorpus) of masked-LM pre-training
)
run=()
[ "$(id -u)" -eq 0 ] || run=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -qq
"${run[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" "$@" >/dev/null
echo "install-deps: installed ${packages[*]} $*"
