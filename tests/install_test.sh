#!/usr/bin/env bash
# tests/install_test.sh — installs the build tree into a fresh prefix and uses it the way an
# application would: with CMake's find_package, or with pkg-config. One ctest entry per case.
#
#   install_test.sh CASE BUILD_DIR SOURCE_DIR WORKDIR VERSION TOOLS CXX [LAUNCHER]
#
# Cases:
#   find_package  the installed layout (headers, library, package files, trainrt-cache) is
#                 complete; examples/consumer configures with CMAKE_PREFIX_PATH=<prefix>
#                 (and finds trainrt there, not elsewhere), builds with Ninja and trains
#                 (exit 0 = its loss fell below half); the installed trainrt-cache verifies
#                 the kernel cache the consumer filled; an incompatible version
#                 (find_package(trainrt <major+1>)) and an unknown component are refused
#   pkg_config    pkg-config knows trainrt at the prefix with the right version; the
#                 consumer's main.cpp compiles and links with
#                 `pkg-config --static --cflags --libs trainrt` alone, and trains
# TOOLS is 1 when the build has the tools (bin/trainrt-cache is then required and used), else 0.
# CXX is the compiler of the build tree; LAUNCHER (ccache) is used when given.
set -uo pipefail

case=$1 build=$2 src=$3 work=$4 version=$5 tools=$6 cxx=$7 launcher=${8:-}
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
log=$work/log

fail() {
  echo "FAIL ($case): $*" >&2
  if [[ -s $log ]]; then
    echo "---- last output ($log) ----" >&2
    tail -n 60 "$log" >&2
  fi
  exit 1
}

# step DESCRIPTION COMMAND...: runs the command with its output in $log; fails loudly if it fails.
step() {
  local what=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    fail "$what failed: $*"
  fi
}

step "cmake --install" cmake --install "$build" --prefix "$prefix"

# The layout: whichever lib directory GNUInstallDirs chose (lib, lib64, lib/<multiarch>).
config=$(find "$prefix" -path '*/cmake/trainrt/trainrtConfig.cmake' | head -n 1)
[[ -n $config ]] || fail "no lib*/cmake/trainrt/trainrtConfig.cmake under $prefix"
cmakedir=$(dirname "$config")
libdir=$(dirname "$(dirname "$cmakedir")")
expected=("$prefix/include/trainrt/trainrt.hpp" "$prefix/include/trainrt/program.hpp" "$cmakedir/trainrtConfigVersion.cmake"
          "$cmakedir/trainrtTargets.cmake" "$libdir/pkgconfig/trainrt.pc")
[[ $tools == 1 ]] && expected+=("$prefix/bin/trainrt-cache")
for f in "${expected[@]}"; do
  [[ -f $f ]] || fail "missing from the install: $f"
done
compgen -G "$libdir/libtrainrt.*" >/dev/null || fail "missing from the install: $libdir/libtrainrt.a or .so"
# Nothing of the library's private headers (src/) may leak into the installed include tree.
leaked=$(find "$prefix/include" -type f ! -path "$prefix/include/trainrt/*.hpp")
[[ -z $leaked ]] || fail "unexpected files in $prefix/include: $leaked"

# A kernel cache of this test's own, so that the run neither reads nor fills the user's.
export TRAINRT_CACHE_DIR=$work/kernel-cache

case $case in
  find_package)
    launcher_arg=()
    [[ -n $launcher ]] && launcher_arg=(-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher")
    step "configuring examples/consumer" cmake -S "$src/examples/consumer" -B "$work/consumer" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" "${launcher_arg[@]}" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    grep -q "trainrt $version from $cmakedir " "$log" ||
      fail "the consumer did not report trainrt $version from $cmakedir"
    step "building examples/consumer" cmake --build "$work/consumer"
    step "running examples/consumer" "$work/consumer/trainrt_consumer"
    grep -q ": learned$" "$log" || fail "the consumer did not report that it learned"
    cat "$log"
    if [[ $tools == 1 ]]; then
      step "trainrt-cache verify on the consumer's cache" "$prefix/bin/trainrt-cache" --dir "$TRAINRT_CACHE_DIR" verify
      grep -Eq "^[1-9][0-9]* entries checked, 0 bad$" "$log" || fail "trainrt-cache found no good entries"
    fi

    # The version file refuses the next major version; the config refuses unknown components.
    major=${version%%.*}
    mkdir -p "$work/refuse"
    cat >"$work/refuse/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.25)
project(refuse LANGUAGES CXX)
find_package(trainrt \${WANT} CONFIG REQUIRED \${COMPONENTS})
EOF
    if cmake -S "$work/refuse" -B "$work/refuse/v" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
         -DWANT=$((major + 1)) >"$log" 2>&1; then
      fail "find_package(trainrt $((major + 1))) succeeded against version $version"
    fi
    grep -q "trainrtConfig.cmake, version: $version" "$log" || fail "the version refusal did not name $version"
    if cmake -S "$work/refuse" -B "$work/refuse/c" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
         "-DCOMPONENTS=COMPONENTS;no_such_part" >"$log" 2>&1; then
      fail "find_package(trainrt COMPONENTS no_such_part) succeeded"
    fi
    grep -q "unknown component 'no_such_part'" "$log" || fail "the component refusal did not name the component"
    ;;

  pkg_config)
    command -v pkg-config >/dev/null || fail "pkg-config is not installed"
    export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
    # A shared libtrainrt is found through LD_LIBRARY_PATH here; the find_package case runs
    # without it, so that the RPATHs of the consumer and of trainrt-cache are what is tested.
    export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    step "pkg-config --modversion trainrt" pkg-config --modversion trainrt
    [[ $(cat "$log") == "$version" ]] || fail "pkg-config reports version '$(cat "$log")', expected $version"
    step "pkg-config --static --cflags --libs trainrt" pkg-config --static --cflags --libs trainrt
    flags=$(cat "$log")
    echo "pkg-config --static --cflags --libs trainrt: $flags"
    [[ " $flags " == *" -I$prefix/include "* ]] || fail "the flags lack -I$prefix/include: $flags"
    [[ " $flags " == *" -L$libdir "* ]] || fail "the flags lack -L$libdir: $flags"
    # shellcheck disable=SC2086  # the flags are meant to split into words
    step "compiling and linking with the pkg-config flags" $launcher "$cxx" -std=c++20 -O2 \
      "$src/examples/consumer/main.cpp" -o "$work/pc_consumer" $flags
    step "running the pkg-config build" "$work/pc_consumer"
    grep -q ": learned$" "$log" || fail "the pkg-config build did not report that it learned"
    cat "$log"
    ;;

  *)
    fail "unknown case '$case'"
    ;;
esac
echo "PASS ($case)"
