#!/usr/bin/env bash
# tests/dist_train_mpi_test.sh — data-parallel training over mpirun when ranks fail.
#
#   dist_train_mpi_test.sh <dist_train_mpi program> <kill|differ>
#
#   kill     3 ranks under `mpirun --enable-recovery`; rank 1 dies in its third step. Ranks 0
#            and 2 must end that step with a trainrt::Error within the timeout (2 s) plus a
#            margin, naming the collective — never hang. (Without --enable-recovery mpirun
#            kills the job at once; dist_mpi_fault_test.sh covers that.)
#   differ   2 ranks built different graphs: both must fail at compile, rank 1 naming the
#            differing parameter shape.
set -u
program=$1 case=$2
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIPPED: mpirun is not on PATH (install openmpi-bin to run the MPI tests)"
  exit 77
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }
case $case in
  kill)
    timeout --kill-after=5 40 mpirun --allow-run-as-root --oversubscribe --enable-recovery -np 3 "$program" kill 2000 >"$out" 2>&1
    status=$?
    cat "$out"
    [ "$status" -eq 124 ] && fail "the job was still running after 40 s: a rank hangs"
    for rank in 0 2; do
      line=$(grep "^rank $rank: error after" "$out") || { fail "rank $rank reported no error"; continue; }
      ms=$(sed -E 's/^rank [0-9]+: error after ([0-9]+) ms.*/\1/' <<<"$line")
      [ "$ms" -le 4000 ] || fail "rank $rank took $ms ms (timeout 2000 ms)"
      grep -q "^rank $rank: error after .*all_reduce of bucket" <<<"$line" || fail "rank $rank's error names no collective: $line"
    done
    ;;
  differ)
    timeout --kill-after=5 60 mpirun --allow-run-as-root --oversubscribe -np 2 "$program" differ >"$out" 2>&1
    cat "$out"
    grep -q "^rank 1: compile error: .*rank 1 of 2.*f32\[20,6\].*f32\[16,6\]" "$out" || fail "rank 1 did not name the difference"
    grep -q "^rank 0: compile error: .*rank(s) 1 built a different training step" "$out" || fail "rank 0 did not fail naming rank 1"
    ;;
  *) echo "unknown case $case"; exit 2 ;;
esac
[ "$failures" -eq 0 ] && echo "PASSED: $case" || exit 1
