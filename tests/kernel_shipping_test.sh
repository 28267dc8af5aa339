#!/usr/bin/env bash
# tests/kernel_shipping_test.sh DEMO TOOL WORKDIR CASE — the kernel cache across processes:
#   warm     a second process finds every module on disk and compiles nothing
#   ship     export a cache, import it into an empty directory, run with no host compiler:
#            zero compiles, still fused
#   nocc     no compiler and an empty cache: the Program runs unfused with one warning
#   race     four processes compiling the same Program into one empty directory at once all
#            succeed and leave one good entry per module
set -euo pipefail
demo=$1 tool=$2 work=$3 case=$4
rm -rf "$work" && mkdir -p "$work"
field() { sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p" <<<"$2"; }
expect() { [[ "$2" == "$3" ]] || { echo "FAIL: $1: expected $3, got $2"; exit 1; }; }

case $case in
  warm)
    cold=$(TRAINRT_CACHE_DIR=$work/a "$demo")
    warm=$(TRAINRT_CACHE_DIR=$work/a "$demo")
    echo "cold: $cold"; echo "warm: $warm"
    [[ $(field modules_compiled "$cold") -gt 0 ]] || { echo "FAIL: the cold run compiled nothing"; exit 1; }
    expect "warm compiles" "$(field modules_compiled "$warm")" 0
    expect "cold program cache" "$(field program_cache_hit "$cold")" false
    expect "warm program cache" "$(field program_cache_hit "$warm")" true
    [[ $(field disk_hits "$warm") -ge $(field modules "$warm") ]] || { echo "FAIL: modules not read from disk"; exit 1; }
    ;;
  ship)
    TRAINRT_CACHE_DIR=$work/a "$demo" >/dev/null
    "$tool" --dir "$work/a" export "$work/kernels.trc"
    "$tool" --dir "$work/b" import "$work/kernels.trc"
    out=$(TRAINRT_CACHE_DIR=$work/b TRAINRT_CXX=none "$demo")
    echo "shipped, no compiler: $out"
    expect "compiles" "$(field modules_compiled "$out")" 0
    expect "fallback" "$(field fusion_fallback "$out")" false
    [[ $(field fused_nodes "$out") -gt 0 ]] || { echo "FAIL: not fused"; exit 1; }
    ;;
  nocc)
    out=$(TRAINRT_CACHE_DIR=$work/empty TRAINRT_CXX=none "$demo" 2>"$work/stderr")
    echo "no compiler, empty cache: $out"; cat "$work/stderr"
    expect "fallback" "$(field fusion_fallback "$out")" true
    expect "fused nodes" "$(field fused_nodes "$out")" 0
    expect "warnings" "$(grep -c 'running unfused' "$work/stderr")" 1
    ;;
  race)
    for i in 1 2 3 4; do TRAINRT_CACHE_DIR=$work/shared "$demo" >"$work/out$i" & done
    status=0
    for i in 1 2 3 4; do wait -n || status=1; done
    cat "$work"/out*
    expect "every process succeeded" $status 0
    "$tool" --dir "$work/shared" verify
    entries=$("$tool" --dir "$work/shared" list | grep -c cpu_module || true)
    expect "one entry per module" "$entries" "$(field modules "$(cat "$work/out1")")"
    ;;
  damaged)
    # Every entry damaged after a cold run: the next process logs misses, compiles again,
    # trains, and leaves good entries for the one after it.
    TRAINRT_CACHE_DIR=$work/a "$demo" >/dev/null
    for f in $(find "$work/a" -type f -name '*.cpu' -o -type f -name '*.prog'); do
      printf '\xff\xfe' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
    done
    again=$(TRAINRT_CACHE_DIR=$work/a "$demo" 2>"$work/stderr")
    echo "after damage: $again"; grep -c "damaged\|checksum\|unreadable" "$work/stderr" || true
    expect "program cache after damage" "$(field program_cache_hit "$again")" false
    [[ $(field modules_compiled "$again") -gt 0 ]] || { echo "FAIL: damaged modules were used"; exit 1; }
    third=$(TRAINRT_CACHE_DIR=$work/a "$demo")
    expect "repaired" "$(field program_cache_hit "$third")" true
    expect "repaired compiles" "$(field modules_compiled "$third")" 0
    ;;
  *) echo "unknown case $case"; exit 2 ;;
esac
echo PASS
