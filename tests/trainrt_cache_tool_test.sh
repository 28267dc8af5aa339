#!/usr/bin/env bash
# tests/trainrt_cache_tool_test.sh — drives the trainrt-cache tool over a cache directory
# filled by trainrt_cache_fill and checks its output and exit codes. One ctest entry per case.
#
#   trainrt_cache_tool_test.sh TOOL FILL WORKDIR CASE
#
# Cases:
#   list_stats     list (order, kinds, sizes, ages), stats (counts, bytes, cap, seconds)
#   verify         verify passes, then a flipped payload byte makes it print BAD and exit 1
#   prune_clear    prune SIZE removes the damaged entry first, then the oldest; clear empties
#   export_import  export, clear, import gives back every entry; the environment's directory
#   errors         bad size, unknown command, missing arguments, damaged/missing/foreign
#                  archives, unusable directory: a message and exit status 2
set -uo pipefail

tool=$1 fill=$2 work=$3 case=$4
rm -rf "$work"
mkdir -p "$work"
dir=$work/cache
unset TRAINRT_CACHE_MAX_BYTES TRAINRT_CACHE_DIR

fail() {
  echo "FAIL ($case): $*" >&2
  exit 1
}

# run WANT_RC ARGS...: runs the tool on $dir; leaves stdout in $out, stderr in $err.
run() {
  local want=$1
  shift
  out=$("$tool" --dir "$dir" "$@" 2>"$work/stderr")
  local rc=$?
  err=$(cat "$work/stderr")
  [ "$rc" -eq "$want" ] || fail "'trainrt-cache $*' exited $rc, expected $want
stdout: $out
stderr: $err"
}

expect_in() {  # expect_in TEXT PATTERN WHAT
  grep -qE -- "$2" <<<"$1" || fail "$3: no match for '$2' in:
$1"
}

lines() { [ -z "$1" ] && echo 0 || wc -l <<<"$1"; }

# The cache: 6 entries; keys[i] and kinds[i] in fill order (most recently used first).
mapfile -t filled < <("$fill" "$dir" 6) || fail "trainrt_cache_fill failed"
[ "${#filled[@]}" -eq 6 ] || fail "trainrt_cache_fill printed ${#filled[@]} lines"
keys=() kinds=()
for line in "${filled[@]}"; do
  keys+=("${line%% *}")
  kinds+=("${line##* }")
done
entry_file() { find "$dir" -name "$1.*" -type f; }

case $case in
list_stats)
  run 0 list
  [ "$(lines "$out")" -eq 6 ] || fail "list printed $(lines "$out") lines: $out"
  ages=(30s 10m 3h 2d 5d 40d)
  sizes=("1.1 KiB" "2.0 KiB" "3.0 KiB" "4.0 KiB" "5.0 KiB" "6.0 KiB")
  i=0
  while read -r key kind size unit age rest; do
    [ "$key" = "${keys[$i]:0:16}" ] || fail "list line $i: key $key, expected ${keys[$i]:0:16} (most recent first)"
    [ "$kind" = "${kinds[$i]}" ] || fail "list line $i: kind $kind, expected ${kinds[$i]}"
    [ "$size $unit" = "${sizes[$i]}" ] || fail "list line $i: size '$size $unit', expected '${sizes[$i]}'"
    [ "$age" = "${ages[$i]}" ] || fail "list line $i: age $age, expected ${ages[$i]}"
    [ -z "$rest" ] || fail "list line $i: unexpected '$rest'"
    i=$((i + 1))
  done <<<"$out"
  [ "$i" -eq 6 ] || fail "list: read $i lines"

  run 0 stats
  # Payloads 1000..6000 bytes plus a 93-byte header each; kinds cycle cpu, cuda, program.
  expect_in "$out" "^cpu_module +2 entries +5\.1 KiB +compile time 7\.5 s$" "stats, cpu_module (entries 0 and 3)"
  expect_in "$out" "^cuda_module +2 entries +7\.0 KiB +compile time 10\.5 s$" "stats, cuda_module (1 and 4)"
  expect_in "$out" "^program +2 entries +9\.0 KiB +compile time 13\.5 s$" "stats, program (2 and 5)"
  expect_in "$out" "^total +6 entries +21\.1 KiB +of a 2\.0 GiB cap \(0%\)$" "stats, total"
  expect_in "$out" "^stored compile time 31\.5 s" "stats, seconds"
  out=$(TRAINRT_CACHE_MAX_BYTES=1M "$tool" --dir "$dir" stats) || fail "stats with a cap"
  expect_in "$out" "of a 1\.0 MiB cap \(2%\)" "stats, the cap from TRAINRT_CACHE_MAX_BYTES"
  ;;

verify)
  run 0 verify
  expect_in "$out" "^6 entries checked, 0 bad$" "verify of a good cache"
  f=$(entry_file "${keys[2]}")
  [ -f "$f" ] || fail "no entry file for ${keys[2]}"
  # The payload is lower-case letters: an 'X' at the end is a damaged byte.
  printf 'X' | dd of="$f" bs=1 seek=$(($(stat -c %s "$f") - 1)) conv=notrunc status=none
  run 1 verify
  expect_in "$out" "^BAD  ${keys[2]}  ${kinds[2]}  .*checksum mismatch" "verify names the damaged entry"
  expect_in "$out" "^6 entries checked, 1 bad$" "verify summary"
  [ "$(grep -c '^BAD' <<<"$out")" -eq 1 ] || fail "verify reported more than one bad entry: $out"
  ;;

prune_clear)
  f=$(entry_file "${keys[2]}")
  head -c 10 /dev/zero >"$f"  # entry 2 is now foreign (10 bytes)
  run 0 list
  expect_in "$out" "^${keys[2]:0:16} .*INVALID: truncated" "list marks the foreign entry"
  # Entries: 0:1093 1:2093 2:10 (invalid) 3:4093 4:5093 5:6093 bytes. prune 4K removes the
  # invalid one, then the oldest (5, 4, 3): 3186 bytes remain.
  run 0 prune 4K
  expect_in "$out" "^removed 4 entries: " "prune"
  run 0 list
  [ "$(lines "$out")" -eq 2 ] || fail "after prune 4K, list shows: $out"
  expect_in "$out" "^${keys[0]:0:16} " "entry 0 survives"
  expect_in "$out" "^${keys[1]:0:16} " "entry 1 survives"
  run 0 prune 4K
  expect_in "$out" "^removed 0 entries" "a second prune"
  run 0 clear
  expect_in "$out" "^removed 2 entries$" "clear"
  run 0 list
  [ -z "$out" ] || fail "list after clear: $out"
  run 0 stats
  expect_in "$out" "^total +0 entries +0 B" "stats after clear"
  ;;

export_import)
  run 0 export "$work/a.archive"
  expect_in "$out" "^exported 6 entries to $work/a.archive$" "export"
  run 0 clear
  run 0 import "$work/a.archive"
  expect_in "$out" "^imported 6 entries from " "import"
  run 0 verify
  expect_in "$out" "^6 entries checked, 0 bad$" "verify after import"
  # Without --dir the library's own directory (TRAINRT_CACHE_DIR) is used.
  out=$(TRAINRT_CACHE_DIR=$work/env-cache "$tool" import "$work/a.archive") || fail "import via TRAINRT_CACHE_DIR"
  out=$(TRAINRT_CACHE_DIR=$work/env-cache "$tool" list) || fail "list via TRAINRT_CACHE_DIR"
  [ "$(lines "$out")" -eq 6 ] || fail "the environment's cache lists: $out"
  ;;

errors)
  run 2 prune 12Q
  expect_in "$err" "'12Q' is not a size" "a bad size"
  run 2 prune
  expect_in "$err" "prune takes one argument" "prune without a size"
  run 2 frobnicate
  expect_in "$err" "unknown command 'frobnicate'" "an unknown command"
  run 2
  expect_in "$err" "no command given" "no command"
  run 2 list extra
  expect_in "$err" "list takes no argument" "a stray argument"
  run 2 import "$work/missing.archive"
  expect_in "$err" "missing.archive" "a missing archive"
  head -c 5000 /dev/urandom >"$work/random.archive"
  run 2 import "$work/random.archive"
  expect_in "$err" "damaged.*bad magic" "a foreign archive"
  run 0 export "$work/a.archive"
  head -c $(($(stat -c %s "$work/a.archive") - 100)) "$work/a.archive" >"$work/short.archive"
  run 2 import "$work/short.archive"
  expect_in "$err" "damaged at its entry 5: truncated" "a truncated archive"
  out=$("$tool" --dir /proc/trainrt-no-such-dir list 2>"$work/stderr")
  [ $? -eq 2 ] || fail "an unusable directory should exit 2"
  expect_in "$(cat "$work/stderr")" "cannot use the cache directory" "an unusable directory"
  out=$(TRAINRT_CACHE_DIR=off "$tool" list 2>"$work/stderr")
  [ $? -eq 2 ] || fail "TRAINRT_CACHE_DIR=off without --dir should exit 2"
  run 0 --help
  expect_in "$out" "^usage: trainrt-cache" "--help"
  ;;

*)
  fail "unknown case"
  ;;
esac
echo "ok ($case)"
