#!/usr/bin/env bash
# tests/dist_mpi_test.sh — runs an MPI test program as a job of <np> ranks for ctest.
#
#   dist_mpi_test.sh <np> <limit_s> <program> [args...]
#
# np 1 runs the program alone (MPI's singleton mode: no launcher needed). Otherwise it runs
# `mpirun --allow-run-as-root --oversubscribe -np <np>`, and reports "skipped" (exit 77) when
# mpirun is not installed. A job still running after <limit_s> seconds is killed and fails:
# a hang is a failure, never a wait for ctest's own timeout.
set -u
np=$1 limit=$2
shift 2
export DIST_MPI_TEST_RANKS=$np
if [ "$np" -eq 1 ]; then
  launch=()
else
  if ! command -v mpirun >/dev/null 2>&1; then
    echo "SKIPPED: mpirun is not on PATH (install openmpi-bin to run the MPI tests)"
    exit 77
  fi
  launch=(mpirun --allow-run-as-root --oversubscribe -np "$np")
fi
begin=$(date +%s)
timeout --kill-after=10 "$limit" "${launch[@]}" "$@"
status=$?
echo "dist_mpi_test.sh: $np rank(s) ended with status $status after $(( $(date +%s) - begin )) s"
if [ "$status" -eq 124 ]; then
  echo "FAILED: the job was still running after ${limit} s (a hang)"
  exit 1
fi
exit "$status"
