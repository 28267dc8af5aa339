#!/usr/bin/env bash
# bench/run_dist_bench.sh [BUILD_DIR] [-- extra dist_bench flags] — runs dist_bench (the MPI
# all-reduce by size, and the overlap of gradient buckets with backward in data-parallel
# steps) under mpirun and saves its output. Builds nothing: build the target dist_bench
# first (README.md "Data-parallel").
#
# Environment: RANKS (2), THREADS (1, intra-op threads per rank), REPS (30), MODELS
# ("mlp,cnn,resnet18"), BUCKETS_KIB ("64,256,1024,4096,25600"), RESULTS (where the output goes;
# default BUILD_DIR/bench-results/dist-<UTC time>.txt).
#
# mpirun flags: --oversubscribe (more ranks than cores is allowed: the 2-core build machine),
# --allow-run-as-root (containers), and --bind-to none: Open MPI binds each rank to one core
# when there are at most 2 ranks, and oneTBB then starts no worker for the Program's extra
# arena slot, so the collective could not run while backward goes on.
set -euo pipefail
build=${1:-build}
shift $(( $# > 0 ? 1 : 0 ))
[[ ${1:-} == -- ]] && shift
bin=$build/bench/dist_bench
[[ -x $bin ]] || { echo "run_dist_bench.sh: no $bin (build the target dist_bench)" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "run_dist_bench.sh: mpirun not found (apt-get install openmpi-bin)" >&2; exit 2; }
if grep -q '^CMAKE_BUILD_TYPE:STRING=' "$build/CMakeCache.txt" 2>/dev/null &&
   ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release' "$build/CMakeCache.txt"; then
  echo "run_dist_bench.sh: warning: $build is not a Release build; figures will be slow" >&2
fi
ranks=${RANKS:-2}
threads=${THREADS:-1}
results=${RESULTS:-$build/bench-results/dist-$(date -u +%Y%m%dT%H%M%SZ).txt}
mkdir -p "$(dirname "$results")"
{
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $(mpirun --version 2>/dev/null | head -1)"
  echo "# mpirun --oversubscribe --bind-to none -np $ranks, OMP_NUM_THREADS=$threads"
  OMP_NUM_THREADS=$threads mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks" \
    -x OMP_NUM_THREADS "$bin" --threads "$threads" --reps "${REPS:-30}" --models "${MODELS:-mlp,cnn,resnet18}" \
    --buckets-kib "${BUCKETS_KIB:-64,256,1024,4096,25600}" "$@"
} 2>&1 | tee "$results"
echo "saved to $results"
