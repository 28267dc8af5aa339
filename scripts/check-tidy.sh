#!/usr/bin/env bash
# Runs clang-tidy, configured by the checked-in .clang-tidy, over every src/**/*.cpp (and through
# them over our headers in src/ and include/trainrt/), using the build directory's
# compile_commands.json. Prints each finding once and exits 1 on any finding; nothing is cached,
# so every run checks everything.
# Usage: scripts/check-tidy.sh [build-dir]   (default: build; configure it first with cmake)
# Environment: RUN_CLANG_TIDY / CLANG_TIDY pick the binaries (default run-clang-tidy-16 /
# clang-tidy-16: the clang of the sanitizer build, whose libomp-16-dev provides clang's omp.h;
# Debian lets only one libomp-N-dev be installed); JOBS the parallelism (default: nproc); TIDY_LOG where the full log goes
# (default: <build-dir>/clang-tidy.log).
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
build=$(realpath "${1:-$root/build}")
run_clang_tidy=${RUN_CLANG_TIDY:-run-clang-tidy-16}
clang_tidy=${CLANG_TIDY:-clang-tidy-16}
jobs=${JOBS:-$(nproc)}
log=${TIDY_LOG:-$build/clang-tidy.log}

for tool in "$run_clang_tidy" "$clang_tidy"; do
  command -v "$tool" >/dev/null || { echo "check-tidy: $tool not found (scripts/install-deps.sh installs it)" >&2; exit 2; }
done
[ -f "$build/compile_commands.json" ] || {
  echo "check-tidy: no $build/compile_commands.json; configure first: cmake -S . -B $build -G Ninja" >&2
  exit 2
}

# The compile commands are GCC's: clang does not know some of their warning flags
# (-Wshadow=local, -Wno-restrict), which must not count as findings. GCC's own omp.h (which the
# oneDNN glue includes) does not parse with clang: libomp-16-dev puts clang's where it looks.
# clang-tidy older than 15 lacks the builtin libstdc++ 12's <source_location> needs: a shim.
args=(-p "$build" -j "$jobs" -quiet -clang-tidy-binary "$(command -v "$clang_tidy")"
      -extra-arg=-Wno-unknown-warning-option)
version=$("$clang_tidy" --version | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p')
if [ -n "$version" ] && [ "$version" -lt 15 ]; then
  args+=("-extra-arg-before=-include$root/scripts/clang-tidy-source-location.h")
fi

start=$(date +%s)
set +e
# run-clang-tidy matches this regular expression against the files of compile_commands.json.
"$run_clang_tidy" "${args[@]}" "^$root/src/.*\.cpp\$" >"$log" 2>&1
rc=$?
set -e
elapsed=$(( $(date +%s) - start ))

# One line per finding (a header's finding is reported by every file that includes it).
mapfile -t findings < <(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error): ' | sort -u)
files=$(grep -c "\"file\": \"$root/src/.*\.cpp\"" "$build/compile_commands.json" || true)
if [ "${#findings[@]}" -gt 0 ] || [ "$rc" -ne 0 ]; then
  printf '%s\n' "${findings[@]}"
  if [ "${#findings[@]}" -eq 0 ]; then
    sed 's/\x1b\[[0-9;]*m//g' "$log" | tail -n 40  # failed without a finding: show why
  fi
  echo "check-tidy: ${#findings[@]} findings in $files files (${elapsed}s, $jobs jobs; full log: $log)" >&2
  exit 1
fi
echo "check-tidy: no findings in $files files (${elapsed}s, $jobs jobs)"
