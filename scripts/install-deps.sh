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
  dataset-fashion-mnist  # the example trainers' default image data
  fortunes fortunes-min  # the BERT trainer's default corpus (English text)
  python3 python3-pip  # the trainer tests read JSON; tensorboard comes from PyPI (below)
  python3-torchvision  # tests comparing ResNet and BERT outputs with PyTorch's (torch 1.13)
)
run=()
[ "$(id -u)" -eq 0 ] || run=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -qq
"${run[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" "$@" >/dev/null
echo "install-deps: installed ${packages[*]} $*"
# TensorBoard is not packaged by Debian: the test that reads the trainers' event files back
# uses PyPI's. Without it (no network) that test reports Skipped, so a failure here is a warning.
if ! python3 -c 'import tensorboard' 2>/dev/null; then
  if "${run[@]}" python3 -m pip install -q --break-system-packages --root-user-action=ignore tensorboard; then
    echo "install-deps: installed tensorboard from PyPI"
  else
    echo "install-deps: warning: could not install tensorboard from PyPI; examples.resnet.tensorboard will be skipped" >&2
  fi
fi
