#!/usr/bin/env bash
# ci.sh — everything CI checks, in order (README's test command runs it after install-deps.sh):
#   1. build everything (Release, warnings are errors) and run the whole ctest suite: unit
#      tests, MPI jobs (label mpi), docs snippets and doxygen (label docs), fuzz regressions
#      (label fuzz), install + find_package/pkg-config consumers (install.*); gpu-labelled
#      tests report Skipped without a device;
#   2. clang-format: every tracked C++ file is formatted (scripts/check-format.sh);
#   3. clang-tidy over src/ with .clang-tidy (scripts/check-tidy.sh);
#   4. the AddressSanitizer + UndefinedBehaviorSanitizer build, its tests and a bounded run of
#      every libFuzzer target (scripts/check-sanitizers.sh).
# Each step prints its wall time. Set CI_SKIP="tidy sanitizers" (any of build, format, tidy,
# sanitizers) to leave steps out locally.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
skip=" ${CI_SKIP:-} "
step() {
  local name=$1
  shift
  if [[ $skip == *" $name "* ]]; then
    echo "ci: $name skipped (CI_SKIP)"
    return
  fi
  local begin=$SECONDS
  echo "ci: ---- $name ----"
  "$@"
  echo "ci: $name passed in $((SECONDS - begin)) s"
}
build_and_test() {
  cmake -S . -B build-ci -G Ninja -DCMAKE_BUILD_TYPE=Release -DTRAINRT_WERROR=ON
  cmake --build build-ci
  ctest --test-dir build-ci --output-on-failure -j 2
}
begin=$SECONDS
step build build_and_test
step format scripts/check-format.sh
step tidy scripts/check-tidy.sh build-ci
step sanitizers env FUZZ_SECONDS="${FUZZ_SECONDS:-20}" scripts/check-sanitizers.sh build-asan
echo "ci: all passed in $((SECONDS - begin)) s"
