#!/usr/bin/env bash
# bench/run_compile_cache_bench.sh [BUILD_DIR] — the compiler cache and fusion, per model:
# a cold process over an empty cache directory, then a new process over the same directory
# (warm disk), each also compiling a second Program in-process (warm memory); fused against
# unfused median step times. REPEATS (default 3) cold/warm pairs; medians are reported.
# Goals: warm-disk time to first step <= 5% of cold; the fused step faster than unfused.
set -euo pipefail
build=${1:-build}
bin=$build/bench/compile_cache_bench
repeats=${REPEATS:-3}
steps=${STEPS:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
field() { sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p" <<<"$2" | tr -d '"'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $repeats repeats, medians"
printf "%-12s %9s %9s %9s %9s %9s %7s %8s %8s %9s %9s %7s  %s\n" model cold_s warm_disk warm_cmp warm_1st warm_mem disk% kernels compiled fused_ms unfused_ms speedup goals
status=0
for model in mlp cnn transformer; do
  cold=() warm=() mem=() fused=() unfused=() wcomp=() wfirst=()
  for r in $(seq "$repeats"); do
    rm -rf "$work/cache"
    c=$(TRAINRT_CACHE_DIR=$work/cache "$bin" --model "$model" --steps 0)
    w=$(TRAINRT_CACHE_DIR=$work/cache "$bin" --model "$model" --steps "$steps")
    [[ $(field modules_compiled "$w") == 0 ]] || { echo "warm process compiled: $w"; status=1; }
    cold+=("$(field time_to_first_step_s "$c")"); warm+=("$(field time_to_first_step_s "$w")")
    mem+=("$(field warm_memory_time_to_first_step_s "$w")")
    wcomp+=("$(field compile_s "$w")"); wfirst+=("$(field first_step_s "$w")")
    fused+=("$(field fused_step_ms "$w")"); unfused+=("$(field unfused_step_ms "$w")")
    kernels=$(field kernels "$c"); compiled=$(field modules_compiled "$c")
  done
  mc=$(printf '%s\n' "${cold[@]}" | median); mw=$(printf '%s\n' "${warm[@]}" | median)
  mm=$(printf '%s\n' "${mem[@]}" | median); mf=$(printf '%s\n' "${fused[@]}" | median)
  mu=$(printf '%s\n' "${unfused[@]}" | median)
  mwc=$(printf '%s\n' "${wcomp[@]}" | median); mwf=$(printf '%s\n' "${wfirst[@]}" | median)
  pct=$(awk -v w="$mw" -v c="$mc" 'BEGIN {printf "%.1f", 100*w/c}')
  speed=$(awk -v f="$mf" -v u="$mu" 'BEGIN {printf "%.2f", u/f}')
  goal1=$(awk -v p="$pct" 'BEGIN {print (p <= 5 ? "PASS" : "FAIL")}')
  goal2=$(awk -v s="$speed" 'BEGIN {print (s > 1 ? "PASS" : "FAIL")}')
  printf "%-12s %9.3f %9.4f %9.4f %9.4f %9.4f %7s %8s %8s %9.3f %9.3f %7s  warm<=5%%:%s fused>unfused:%s\n" \
    "$model" "$mc" "$mw" "$mwc" "$mwf" "$mm" "$pct" "$kernels" "$compiled" "$mf" "$mu" "$speed" "$goal1" "$goal2"
done
exit $status
