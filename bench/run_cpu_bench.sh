#!/usr/bin/env bash
# bench/run_cpu_bench.sh — ms per training step of libtrainrt against libtorch on this CPU.
#
#   bench/run_cpu_bench.sh [BUILD_DIR]          (default: build)
#
# Builds nothing: configure with -DTRAINRT_BUILD_BENCH=ON -DCMAKE_BUILD_TYPE=Release first
# (see bench/README.md). Runs every (model, threads, impl) as its own process, so that peak
# RSS is per configuration, REPEATS times in interleaved order (so that drift in the machine's
# load hits both sides alike), and reports the median of the per-run medians.
#
# Environment:
#   REPEATS=3            processes per configuration
#   MODELS="mlp cnn"     models to run
#   THREADS="1 2"        thread counts to run
#   STEPS= WARMUP=       passed on as --steps / --warmup when set (else each binary's default)
#   PEER_BLAS_DIR        directory holding OpenBLAS-OpenMP's libblas.so.3 for libtorch
#                        (default: found with dpkg -L libopenblas0-openmp)
#   OPENBLAS_CORETYPE    forces OpenBLAS's kernel set; when unset and OpenBLAS falls back to
#                        its generic "Prescott" kernels on a CPU it does not know, the script
#                        sets SkylakeX (AVX-512) or Haswell (AVX2) from /proc/cpuinfo's flags
#   RESULTS=FILE         where the raw JSON lines go (default BUILD_DIR/bench-results/...)
set -euo pipefail

build=${1:-build}
repeats=${REPEATS:-3}
models=${MODELS:-"mlp cnn"}
thread_counts=${THREADS:-"1 2"}
ours="$build/bench/trainrt_step_bench"
peer="$build/bench/torch_step_bench"

warn() { printf '\n*** WARNING: %s\n\n' "$*" >&2; }
die() { printf 'run_cpu_bench.sh: %s\n' "$*" >&2; exit 1; }

[[ -x "$ours" ]] || die "$ours not found: configure $build with -DTRAINRT_BUILD_BENCH=ON and build it"
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
[[ "$build_type" == "Release" ]] || warn "$build is a '${build_type:-unknown}' build, not Release: figures are not comparable"
have_peer=1
if [[ ! -x "$peer" ]]; then
  have_peer=0
  warn "$peer not found (libtorch-dev missing when $build was configured): libtorch columns will be empty"
fi

extra_args=()
[[ -n "${STEPS:-}" ]] && extra_args+=(--steps "$STEPS")
[[ -n "${WARMUP:-}" ]] && extra_args+=(--warmup "$WARMUP")

# --- The peer's BLAS: OpenBLAS built for OpenMP, found through LD_LIBRARY_PATH. -------------
# Debian's libtorch links libblas.so.3, which the alternatives system may point at the
# single-threaded reference BLAS; LD_LIBRARY_PATH makes it load OpenBLAS-OpenMP regardless.
blas_dir=${PEER_BLAS_DIR:-}
if [[ -z "$blas_dir" ]] && command -v dpkg >/dev/null; then
  blas_lib=$(dpkg -L libopenblas0-openmp 2>/dev/null | grep '/libblas\.so\.3$' | head -n1 || true)
  [[ -n "$blas_lib" ]] && blas_dir=$(dirname "$blas_lib")
fi
blas_dir=${blas_dir:-/usr/lib/x86_64-linux-gnu/openblas-openmp}
blas_ok=1
for lib in libblas.so.3 liblapack.so.3; do
  if [[ ! -e "$blas_dir/$lib" ]]; then
    blas_ok=0
    warn "$blas_dir/$lib does not exist: libtorch will use whatever $lib the system resolves" \
      "(possibly the reference BLAS, one thread). Install it: apt-get install -y libopenblas0-openmp"
  fi
done
peer_env=(env "LD_LIBRARY_PATH=$blas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")

if ((have_peer)); then
  echo "libtorch resolves (ldd, with LD_LIBRARY_PATH=$blas_dir):"
  "${peer_env[@]}" ldd "$peer" | grep -E 'blas|lapack|gomp|dnnl|torch_cpu' | sed 's/^/  /'
  # One short probe run: which BLAS was actually mapped and which kernels OpenBLAS chose.
  probe=$("${peer_env[@]}" OMP_NUM_THREADS=1 "$peer" --model mlp --threads 1 --warmup 0 --steps 1 2>/dev/null)
  probe_core=$(sed -n 's/.*"openblas_core":"\([^"]*\)".*/\1/p' <<<"$probe")
  if [[ -z "${OPENBLAS_CORETYPE:-}" && "$probe_core" =~ ^(Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Katmai|Coppermine|Northwood|Banias|Unknown)?$ ]] &&
    [[ -n "$probe_core" ]]; then
    if grep -qw avx512f /proc/cpuinfo; then
      export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then
      export OPENBLAS_CORETYPE=Haswell
    fi
    [[ -n "${OPENBLAS_CORETYPE:-}" ]] &&
      warn "OpenBLAS does not know this CPU and chose its generic '$probe_core' kernels (several times" \
        "slower); the peer runs with OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE, matching /proc/cpuinfo's flags"
  fi
fi

# --- One run: prints its JSON line (or nothing when it failed, with the reason on stderr). ----
# Args: impl model threads log
run_one() {
  local impl=$1 model=$2 threads=$3 log=$4 line rc=0
  local cmd=(env "OMP_NUM_THREADS=$threads")
  if [[ $impl == libtorch ]]; then
    cmd+=("LD_LIBRARY_PATH=$blas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$peer")
  else
    cmd+=("$ours")
  fi
  line=$("${cmd[@]}" --model "$model" --threads "$threads" "${extra_args[@]}" 2>>"$log") || rc=$?
  if ((rc != 0)); then
    printf '  %s %s threads=%s failed (exit %s): %s\n' "$impl" "$model" "$threads" "$rc" \
      "$(grep -v '^\s*$' "$log" | tail -n1)" >&2
    return 0
  fi
  printf '%s\n' "$line"
}

# The value of key $1 in each JSON line on stdin: a string's contents, or a number as written.
field() { sed -n -e "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p;t" -e "s/.*\"$1\":\([^,}]*\).*/\1/p"; }
num() { if [[ -n "$1" ]]; then printf '%.2f' "$1"; else printf 'n/a'; fi; }
# The median of the numbers on stdin (mean of the middle two for an even count); "" if none.
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) exit; print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
minmax() { sort -g | awk 'NR==1{lo=$1} {hi=$1} END {if (NR) printf "%.2f-%.2f", lo, hi}'; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=${RESULTS:-$build/bench-results/cpu-$stamp.jsonl}
mkdir -p "$(dirname "$results")"
: >"$results"
log="${results%.jsonl}.stderr.log"
: >"$log"

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
echo
echo "machine: $(hostname), $(nproc) cores (nproc), ${cpu_model:-unknown CPU}, $(uname -sr)"
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15-min load average before the runs)"
if ((have_peer)); then
  torch_version=$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo unknown)
  echo "peer:    libtorch $torch_version, BLAS from $blas_dir (ok=$blas_ok), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<auto>}"
fi
echo "runs:    $repeats process(es) per configuration, interleaved; raw JSON lines in $results"
echo

impls=(trainrt)
((have_peer)) && impls+=(libtorch)
for ((r = 1; r <= repeats; r++)); do
  for model in $models; do
    for threads in $thread_counts; do
      for impl in "${impls[@]}"; do
        printf '  run %d/%d: %-8s %s threads=%s\n' "$r" "$repeats" "$impl" "$model" "$threads" >&2
        run_one "$impl" "$model" "$threads" "$log" >>"$results"
      done
    done
  done
done

# Check (after the fact, from what each libtorch process reported) which BLAS it mapped.
if ((have_peer)); then
  libs=$(grep '"impl":"libtorch"' "$results" | field blas_libs | tr ',' '\n' | sort -u | grep . || true)
  cores=$(grep '"impl":"libtorch"' "$results" | field openblas_core | sort -u | paste -sd' ' || true)
  echo "libtorch loaded: $(paste -sd' ' <<<"$libs"); OpenBLAS kernels: ${cores:-none}"
  if ! grep -q "^$blas_dir/" <<<"$libs"; then
    warn "libtorch did NOT load the BLAS in $blas_dir (see above): its figures understate it"
  fi
  if grep -qE '(^|/)blas/libblas' <<<"$libs"; then
    warn "libtorch loaded the REFERENCE BLAS: its matmul figures are far below its best"
  fi
fi

echo
echo "ms/step: median over $repeats process(es) of each process's median step time; spread: min-max of those medians"
echo "ratio = libtorch / trainrt (>1: trainrt is faster); RSS: peak resident set of the process (MiB)"
echo
row() { printf '%-5s %7s | %10s %10s %7s | %9s %9s | %13s %13s\n' "$@"; }
row model threads "trainrt ms" "torch ms" ratio "trainrt" "torch" "trainrt" "torch"
row "" "" "/step" "/step" "" "RSS MiB" "RSS MiB" "spread ms" "spread ms"
printf -- '-%.0s' {1..100}
echo
for model in $models; do
  for threads in $thread_counts; do
    declare -A ms=() rss=() spread=()
    for impl in trainrt libtorch; do
      lines=$(grep "\"impl\":\"$impl\"" "$results" | grep "\"model\":\"$model\"" | grep "\"threads\":$threads," || true)
      ms[$impl]=$(field median_ms <<<"$lines" | median)
      rss[$impl]=$(field peak_rss_mb <<<"$lines" | median)
      spread[$impl]=$(field median_ms <<<"$lines" | minmax)
    done
    ratio=""
    if [[ -n "${ms[trainrt]}" && -n "${ms[libtorch]}" ]]; then
      ratio=$(awk -v a="${ms[libtorch]}" -v b="${ms[trainrt]}" 'BEGIN {printf "%.2f", a / b}')
    fi
    row "$model" "$threads" "$(num "${ms[trainrt]}")" "$(num "${ms[libtorch]}")" "${ratio:-n/a}" \
      "$(num "${rss[trainrt]}")" "$(num "${rss[libtorch]}")" "${spread[trainrt]:-n/a}" "${spread[libtorch]:-n/a}"
    unset ms rss spread
  done
done
echo
echo "CPU ms/step: median over the processes of each one's median process CPU time per step. With one"
echo "thread it hardly depends on other load on the machine (wall time does); with more threads it"
echo "also counts OpenMP spin-waiting, so read it only as a check"
echo
row2() { printf '%-5s %7s | %10s %10s %7s\n' "$@"; }
row2 model threads "trainrt" "torch" ratio
row2 "" "" "CPU ms" "CPU ms" ""
printf -- '-%.0s' {1..46}
echo
for model in $models; do
  for threads in $thread_counts; do
    declare -A cpu=()
    for impl in trainrt libtorch; do
      lines=$(grep "\"impl\":\"$impl\"" "$results" | grep "\"model\":\"$model\"" | grep "\"threads\":$threads," || true)
      cpu[$impl]=$(field median_cpu_ms <<<"$lines" | median)
    done
    ratio=""
    if [[ -n "${cpu[trainrt]}" && -n "${cpu[libtorch]}" ]]; then
      ratio=$(awk -v a="${cpu[libtorch]}" -v b="${cpu[trainrt]}" 'BEGIN {printf "%.2f", a / b}')
    fi
    row2 "$model" "$threads" "$(num "${cpu[trainrt]}")" "$(num "${cpu[libtorch]}")" "${ratio:-n/a}"
    unset cpu
  done
done
echo
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (after the runs); stderr of all runs: $log"
