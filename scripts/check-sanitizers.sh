#!/usr/bin/env bash
# check-sanitizers.sh — the sanitizer job of CI (issue 8): builds libtrainrt, its tests and
# its fuzz targets with clang, AddressSanitizer and UndefinedBehaviorSanitizer, runs the test
# suite under them, then runs every libFuzzer target for a bounded time from its corpus.
# Fails on any test failure, sanitizer report, fuzzer crash, leak, timeout or OOM.
#
#   scripts/check-sanitizers.sh [build-dir]     (default: build-asan)
#   FUZZ_SECONDS=30   seconds per fuzz target (0 skips fuzzing)
#   FUZZ_SEED=1       libFuzzer's seed: fixed by default so that a CI run explores the same way
#                     each time and a failure reproduces; 0 picks a random seed (for longer
#                     hunts by hand)
#   JOBS=2            parallel compile jobs and ctest jobs
#   CXX=clang++-16    the compiler; by default the newest clang++ that can compile
#                     std::source_location with Debian 12's libstdc++ (clang 15 or later:
#                     clang 14 lacks __builtin_source_location, so libstdc++ 12's
#                     <source_location> is empty under it)
#
#   TESTS="a_test b_test"  the GoogleTest binaries to build and run (default below);
#                     TESTS=all builds everything and runs the whole ctest suite
#
# What runs under the sanitizers by default, and why not everything: on CI's two cores an
# ASan+UBSan build of every test binary alone takes longer than the job's 15 minutes, so the
# default is a representative subset: the code that reads untrusted bytes and the core the
# rest stands on (tensors, graphs, hashing, the kernel and program caches, serialized
# graphs, the dataset readers and loader, safetensors and checkpoints) plus end-to-end training
# tests that compile, load and run generated kernels (program_test; data_parallel_test, whose
# ranks are threads of one process). Always left out:
#   - label gpu: they need a CUDA device (the GPU job runs them).
#   - kernel_shipping.* and trainrt_cache_tool.* (with TESTS=all): shell scripts that start
#     the tools dozens of times; the cache code they drive runs under ASan in
#     disk_cache_test, kernel_cache_test and the cache_entry / cache_archive fuzzers.
#   - bench/ and examples/ are not built here (they are programs, not checks).
# The fuzz targets' corpus and regression replays (ctest label fuzz) always run.
# When a fuzzer finds a crash, the input is in <build-dir>/fuzz-artifacts/<target>/: fix the
# library, then add the input to fuzz/regressions/<target>/ so ctest replays it in every build.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-asan}
[[ $build = /* ]] || build="$root/$build"
fuzz_seconds=${FUZZ_SECONDS:-30}
fuzz_seed=${FUZZ_SEED:-1}
jobs=${JOBS:-2}
start=$SECONDS

if [[ -z ${CXX:-} ]]; then
  for c in clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++; do
    if command -v "$c" >/dev/null; then CXX=$c; break; fi
  done
fi
CC=${CC:-${CXX/clang++/clang}}
export CC CXX
echo "check-sanitizers: compiler $("$CXX" --version | head -1), build directory $build"

# halt_on_error: the first report fails the test; print_stacktrace: UBSan reports say where.
# detect_leaks: LeakSanitizer runs at exit (on by default with ASan on Linux; stated here).
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:print_stacktrace=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Reports name functions and lines only with a symbolizer (llvm-16 ships none with clang-16).
for s in llvm-symbolizer-16 llvm-symbolizer llvm-symbolizer-14; do
  if command -v "$s" >/dev/null; then export ASAN_SYMBOLIZER_PATH; ASAN_SYMBOLIZER_PATH=$(command -v "$s"); break; fi
done
export LSAN_OPTIONS=suppressions=$root/scripts/lsan-suppressions.txt:print_suppressions=0
export TRAINRT_LOG_LEVEL=${TRAINRT_LOG_LEVEL:-error}

tests=${TESTS:-shape_tensor_test graph_test sha256_test disk_cache_test kernel_cache_test serialize_graph_test data_test data_loader_test program_test safetensors_test checkpoint_test data_parallel_test text_test metrics_test mixed_precision_test caching_allocator_test stream_plan_test}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRAINRT_WERROR=ON \
  -DTRAINRT_SANITIZE=address,undefined -DTRAINRT_BUILD_FUZZERS=ON \
  -DTRAINRT_BUILD_BENCH=OFF -DTRAINRT_BUILD_EXAMPLES=OFF >/dev/null
fuzz_targets=$(sed -n 's/^trainrt_add_fuzzer(\([a-z_0-9]*\).*/\1/p' "$root/fuzz/CMakeLists.txt")
targets=()
for t in $fuzz_targets; do targets+=("fuzz_$t" "fuzz_${t}_replay"); done
if [[ $tests == all ]]; then
  cmake --build "$build" -j "$jobs"
else
  # shellcheck disable=SC2206
  cmake --build "$build" -j "$jobs" --target "${targets[@]}" $tests
fi
echo "check-sanitizers: built in $((SECONDS - start)) s"

test_start=$SECONDS
if [[ $tests == all ]]; then
  ctest --test-dir "$build" --output-on-failure -j "$jobs" -LE gpu -E '^(kernel_shipping|trainrt_cache_tool)\.'
else
  ctest --test-dir "$build" --output-on-failure -j "$jobs" -L fuzz
  # The environment ctest gives these binaries (tests/CMakeLists.txt).
  export TRAINRT_VERIFY=1 TRAINRT_CACHE_DIR="$build/test-kernel-cache"
  for t in $tests; do
    echo "check-sanitizers: $t"
    "$build/tests/$t" --gtest_brief=1 >"$build/$t.log" 2>&1 || { tail -n 80 "$build/$t.log"; exit 1; }
  done
fi
echo "check-sanitizers: tests passed in $((SECONDS - test_start)) s"

if ((fuzz_seconds > 0)); then
  failed=()
  for fuzzer in "$build"/fuzz/fuzz_*; do
    name=$(basename "$fuzzer")
    [[ -x $fuzzer && $name != *_replay ]] || continue
    target=${name#fuzz_}
    # New inputs go to a scratch folder (the first one named), never into the checked-in corpus.
    work="$build/fuzz-work/$target" artifacts="$build/fuzz-artifacts/$target/"
    rm -rf "$work" && mkdir -p "$work" "$artifacts"
    echo "check-sanitizers: fuzzing $target for $fuzz_seconds s"
    if ! "$fuzzer" -seed="$fuzz_seed" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts" \
        "$work" "$root/fuzz/corpus/$target" "$root/fuzz/regressions/$target" >"$build/fuzz-$target.log" 2>&1; then
      tail -n 60 "$build/fuzz-$target.log"
      failed+=("$target")
    else
      grep -E '^stat::number_of_executed_units|^#[0-9]+ *DONE' "$build/fuzz-$target.log" | tail -n 2 || true
    fi
  done
  if ((${#failed[@]})); then
    echo "check-sanitizers: fuzz targets failed: ${failed[*]} (inputs in $build/fuzz-artifacts/)" >&2
    exit 1
  fi
fi
echo "check-sanitizers: all passed in $((SECONDS - start)) s"
