#!/usr/bin/env bash
# bench/run_cpu_bench.sh — ms per training step of libtrainrt against libtorch on this CPU,
# memory planned against memory used, time spent waiting for data, and the goals of the
# "Multi-threaded execution" issue checked against the figures.
#
#   bench/run_cpu_bench.sh [BUILD_DIR]          (default: build)
#
# Builds nothing: configure with -DTRAINRT_BUILD_BENCH=ON -DCMAKE_BUILD_TYPE=Release first
# (see bench/README.md). Runs every (model, threads, impl) as its own process, so that peak
# RSS is per configuration, REPEATS times in interleaved order (so that drift in the machine's
# load hits both sides alike), and reports the median of the per-run medians. libtrainrt runs
# once per CompileOptions::inter_op setting ("trainrt-on", "trainrt-off").
#
# Contents: settings and checks; the peer's BLAS; run_one; the runs; the tables (time, memory,
# CPU time, data wait); the goals with PASS/FAIL.
#
# Environment:
#   REPEATS=3            processes per configuration
#   MODELS="mlp cnn resnet18 transformer"   models to run
#   THREADS="1 2"        thread counts to run
#   INTER_OP="on off"    libtrainrt's CompileOptions::inter_op settings to run
#   LOADER=on            also run mlp and cnn (those in MODELS) fed by trainrt's DataLoader,
#                        inter-op on, and report the time steps waited for data; off skips it
#   DATA=DIR             the loader's Fashion-MNIST directory (default: the binary's,
#                        /usr/share/datasets/fashion-mnist; "synthetic" for random images)
#   STEPS= WARMUP=       passed on as --steps / --warmup when set (else each model's default:
#                        mlp 10+200, cnn 10+50, resnet18 and transformer 3+10)
#   PEER_BLAS_DIR        directory holding OpenBLAS-OpenMP's libblas.so.3 for libtorch
#                        (default: found with dpkg -L libopenblas0-openmp)
#   OPENBLAS_CORETYPE    forces OpenBLAS's kernel set; when unset and OpenBLAS falls back to
#                        its generic "Prescott" kernels on a CPU it does not know, the script
#                        sets SkylakeX (AVX-512) or Haswell (AVX2) from /proc/cpuinfo's flags
#   RESULTS=FILE         where the raw JSON lines go (default BUILD_DIR/bench-results/...)
set -euo pipefail

build=${1:-build}
repeats=${REPEATS:-3}
models=${MODELS:-"mlp cnn resnet18 transformer"}
thread_counts=${THREADS:-"1 2"}
inter_ops=${INTER_OP:-"on off"}
loader=${LOADER:-on}
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

for m in $models; do
  [[ $m =~ ^(mlp|cnn|resnet18|transformer)$ ]] || die "MODELS: unknown model '$m' (mlp cnn resnet18 transformer)"
done
for io in $inter_ops; do
  [[ $io =~ ^(on|off)$ ]] || die "INTER_OP: '$io' is neither on nor off"
done
[[ $loader =~ ^(on|off)$ ]] || die "LOADER: '$loader' is neither on nor off"

extra_args=()
[[ -n "${STEPS:-}" ]] && extra_args+=(--steps "$STEPS")
[[ -n "${WARMUP:-}" ]] && extra_args+=(--warmup "$WARMUP")
loader_args=(--loader on)
[[ -n "${DATA:-}" ]] && loader_args+=(--data "$DATA")

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
# Args: config model threads log, where config is trainrt-on, trainrt-off, trainrt-loader or
# libtorch.
run_one() {
  local config=$1 model=$2 threads=$3 log=$4 line rc=0
  local cmd=(env "OMP_NUM_THREADS=$threads")
  case $config in
    libtorch) cmd+=("LD_LIBRARY_PATH=$blas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$peer") ;;
    trainrt-on) cmd+=("$ours" --inter-op on) ;;
    trainrt-off) cmd+=("$ours" --inter-op off) ;;
    trainrt-loader) cmd+=("$ours" --inter-op on "${loader_args[@]}") ;;
  esac
  printf '==> %s %s threads=%s\n' "$config" "$model" "$threads" >>"$log"
  line=$("${cmd[@]}" --model "$model" --threads "$threads" "${extra_args[@]}" 2>>"$log") || rc=$?
  if ((rc != 0)); then
    printf '  %s %s threads=%s failed (exit %s): %s\n' "$config" "$model" "$threads" "$rc" \
      "$(grep -v '^\s*$' "$log" | tail -n1)" >&2
    return 0
  fi
  printf '%s\n' "$line"
}

# The value of key $1 in each JSON line on stdin: a string's contents, or a number as written.
field() { sed -n -e "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p;t" -e "s/.*\"$1\":\([^,}]*\).*/\1/p" | grep -v '^null$' || true; }
num() { if [[ -n "$1" ]]; then printf '%.2f' "$1"; else printf 'n/a'; fi; }
# The median of the numbers on stdin (mean of the middle two for an even count); "" if none.
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) exit; print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
minmax() { sort -g | awk 'NR==1{lo=$1} {hi=$1} END {if (NR) printf "%.2f-%.2f", lo, hi}'; }
# a / b with 2 decimals (frac: 4), or "" when either is missing.
ratio() { [[ -n "$1" && -n "$2" ]] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}' || true; }
frac() { [[ -n "$1" && -n "$2" ]] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.4f", a / b}' || true; }
# The smaller of two numbers, either possibly "".
smaller() {
  if [[ -z "$1" ]]; then printf '%s' "$2"; elif [[ -z "$2" ]]; then printf '%s' "$1"; else
    awk -v a="$1" -v b="$2" 'BEGIN {print (a < b ? a : b)}'; fi
}
# The result lines of one configuration: config model threads.
lines_of() {
  local sel
  case $1 in
    libtorch) sel='"impl":"libtorch"' ;;
    trainrt-on) sel='"inter_op":true,' ;;
    trainrt-off) sel='"inter_op":false,' ;;
    trainrt-loader) sel='"loader":"' ;;
  esac
  grep -F "$sel" "$results" | grep -F "\"model\":\"$2\"," | grep -F "\"threads\":$3," |
    { if [[ $1 == trainrt-on ]]; then grep -F '"loader":null'; else cat; fi; } || true
}

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
echo "runs:    $repeats process(es) per configuration, interleaved; models: $models; threads: $thread_counts;"
echo "         trainrt inter-op: $inter_ops; loader: $loader; raw JSON lines in $results"
echo

configs=()
for io in $inter_ops; do configs+=("trainrt-$io"); done
((have_peer)) && configs+=(libtorch)
loader_models=""
if [[ $loader == on ]]; then
  for m in $models; do [[ $m == mlp || $m == cnn ]] && loader_models+="$m "; done
fi
for ((r = 1; r <= repeats; r++)); do
  for model in $models; do
    for threads in $thread_counts; do
      run_configs=("${configs[@]}")
      [[ " $loader_models " == *" $model "* ]] && run_configs+=(trainrt-loader)
      for config in "${run_configs[@]}"; do
        printf '  run %d/%d: %-14s %-11s threads=%s\n' "$r" "$repeats" "$config" "$model" "$threads" >&2
        run_one "$config" "$model" "$threads" "$log" >>"$results"
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

# Medians of every figure the tables need, per configuration: fig[config,model,threads,key].
declare -A fig=()
for model in $models; do
  for threads in $thread_counts; do
    for config in trainrt-on trainrt-off trainrt-loader libtorch; do
      lines=$(lines_of "$config" "$model" "$threads")
      for key in median_ms median_cpu_ms peak_rss_mb planned_arena_mb naive_mb data_wait_ms_per_step \
        data_wait_fraction loader_waits steps; do
        fig[$config,$model,$threads,$key]=$(field "$key" <<<"$lines" | median)
      done
      fig[$config,$model,$threads,spread]=$(field median_ms <<<"$lines" | minmax)
      fig[$config,$model,$threads,loader]=$(field loader <<<"$lines" | sort -u | paste -sd' ')
    done
  done
done
get() { printf '%s' "${fig[$1,$2,$3,$4]:-}"; }
rule() { printf -- '-%.0s' $(seq 1 "$1"); echo; }

echo
echo "TIME. ms/step: median over $repeats process(es) of each process's median step time. \"ours on\" and"
echo "\"ours off\": libtrainrt with CompileOptions::inter_op on and off. ratio = libtorch / the better of"
echo "ours (>1: libtrainrt is faster). RSS: peak resident set of the process, MiB. spread: min-max of"
echo "the per-process medians, ms (how noisy the machine was)"
echo
row() { printf '%-11s %3s | %9s %9s %9s %6s | %8s %8s %8s | %17s %17s %17s\n' "$@"; }
row model thr "ours on" "ours off" torch ratio "RSS on" "RSS off" "RSS" "spread on" "spread off" "spread torch"
row "" "" "ms/step" "ms/step" "ms/step" "" "ours" "ours" "torch" "" "" ""
rule 136
for model in $models; do
  for threads in $thread_counts; do
    on=$(get trainrt-on "$model" "$threads" median_ms)
    off=$(get trainrt-off "$model" "$threads" median_ms)
    torch=$(get libtorch "$model" "$threads" median_ms)
    best=$(smaller "$on" "$off")
    r=$(ratio "$torch" "$best")
    row "$model" "$threads" "$(num "$on")" "$(num "$off")" "$(num "$torch")" "${r:-n/a}" \
      "$(num "$(get trainrt-on "$model" "$threads" peak_rss_mb)")" \
      "$(num "$(get trainrt-off "$model" "$threads" peak_rss_mb)")" \
      "$(num "$(get libtorch "$model" "$threads" peak_rss_mb)")" \
      "$(get trainrt-on "$model" "$threads" spread)" "$(get trainrt-off "$model" "$threads" spread)" \
      "$(get libtorch "$model" "$threads" spread)"
  done
done

echo
echo "MEMORY (MiB). arena: libtrainrt's planned peak of the step's intermediates"
echo "(MemoryReport::arena_bytes); naive: the sum of those buffers without reuse (naive_bytes);"
echo "arena/naive in %; RSS: peak resident set of the whole process (parameters, optimizer state,"
echo "arena, libraries), libtrainrt's with inter-op on, against libtorch's for the same model and batch"
echo
row3() { printf '%-11s %3s | %9s %9s %7s | %9s %9s %7s | %8s %8s\n' "$@"; }
row3 model thr "arena on" "naive on" "% on" "arena off" "naive off" "% off" "RSS ours" "RSS torch"
rule 100
for model in $models; do
  for threads in $thread_counts; do
    cells=()
    for config in trainrt-on trainrt-off; do
      arena=$(get "$config" "$model" "$threads" planned_arena_mb)
      naive=$(get "$config" "$model" "$threads" naive_mb)
      pct=$(frac "$arena" "$naive")
      [[ -n "$pct" ]] && pct=$(awk -v p="$pct" 'BEGIN {printf "%.1f", 100 * p}')
      cells+=("$(num "$arena")" "$(num "$naive")" "${pct:-n/a}")
    done
    row3 "$model" "$threads" "${cells[@]}" "$(num "$(get trainrt-on "$model" "$threads" peak_rss_mb)")" \
      "$(num "$(get libtorch "$model" "$threads" peak_rss_mb)")"
  done
done

echo
echo "CPU ms/step: median over the processes of each one's median process CPU time per step. With one"
echo "thread it hardly depends on other load on the machine (wall time does); with more threads it"
echo "also counts OpenMP spin-waiting, so read it only as a check. ratio = torch / the better of ours"
echo
row2() { printf '%-11s %3s | %9s %9s %9s %6s\n' "$@"; }
row2 model thr "ours on" "ours off" "torch" ratio
row2 "" "" "CPU ms" "CPU ms" "CPU ms" ""
rule 56
for model in $models; do
  for threads in $thread_counts; do
    on=$(get trainrt-on "$model" "$threads" median_cpu_ms)
    off=$(get trainrt-off "$model" "$threads" median_cpu_ms)
    torch=$(get libtorch "$model" "$threads" median_cpu_ms)
    r=$(ratio "$torch" "$(smaller "$on" "$off")")
    row2 "$model" "$threads" "$(num "$on")" "$(num "$off")" "$(num "$torch")" "${r:-n/a}"
  done
done

if [[ -n "$loader_models" ]]; then
  echo
  echo "DATA WAIT. libtrainrt (inter-op on) fed by trainrt::data::DataLoader (prefetch 2) instead of"
  echo "fixed batches; a timed step includes taking its batch. wait: time next() blocked per step"
  echo "(LoaderStats::wait_seconds over the timed steps), its share of the step time, and how many"
  echo "steps waited at all; \"fixed\" is the same model without a loader (ms/step)"
  echo
  row4() { printf '%-11s %3s | %9s %9s | %10s %8s %11s | %s\n' "$@"; }
  row4 model thr "loader" "fixed" "wait" "wait" "steps that" "data"
  row4 "" "" "ms/step" "ms/step" "ms/step" "% step" "waited" ""
  rule 100
  for model in $loader_models; do
    for threads in $thread_counts; do
      frac=$(get trainrt-loader "$model" "$threads" data_wait_fraction)
      [[ -n "$frac" ]] && frac=$(awk -v f="$frac" 'BEGIN {printf "%.2f", 100 * f}')
      waits=$(get trainrt-loader "$model" "$threads" loader_waits)
      steps=$(get trainrt-loader "$model" "$threads" steps)
      wait_ms=$(get trainrt-loader "$model" "$threads" data_wait_ms_per_step)
      row4 "$model" "$threads" "$(num "$(get trainrt-loader "$model" "$threads" median_ms)")" \
        "$(num "$(get trainrt-on "$model" "$threads" median_ms)")" \
        "$([[ -n "$wait_ms" ]] && printf '%.3f' "$wait_ms" || printf 'n/a')" "${frac:-n/a}" \
        "${waits:-n/a}/${steps:-n/a}" "$(get trainrt-loader "$model" "$threads" loader)"
    done
  done
fi

# --- The goals of the issue, judged from the figures above. ------------------------------------
echo
echo "GOALS (libtrainrt; the verdict is taken with inter-op on, CompileOptions' default, where it ran)"
verdict_setting=$(for io in $inter_ops; do echo "$io"; done | grep -x on || echo "$inter_ops" | awk '{print $1}')

# Goal 1: the cnn's 2-thread step at least 1.7x faster than its 1-thread step.
goal1="not measured (needs MODELS with cnn and THREADS with 1 and 2)"
if [[ " $models " == *" cnn "* && " $thread_counts " == *" 1 "* && " $thread_counts " == *" 2 "* ]]; then
  parts=()
  verdict=""
  for io in $inter_ops; do
    s=$(ratio "$(get "trainrt-$io" cnn 1 median_ms)" "$(get "trainrt-$io" cnn 2 median_ms)")
    parts+=("inter-op $io ${s:-n/a}x")
    if [[ $io == "$verdict_setting" && -n "$s" ]]; then
      verdict=$(awk -v s="$s" 'BEGIN {print (s >= 1.7 ? "PASS" : "FAIL")}')
    fi
  done
  goal1="$(IFS=';'; printf '%s' "${parts[*]}" | sed 's/;/; /g') -> ${verdict:-n/a}"
fi
echo "  1. cnn 2-thread speed-up (1-thread ms / 2-thread ms) >= 1.7: $goal1"

# Goal 2: planned arena <= 60% of the naive sum, per model (the largest share over thread counts).
echo "  2. planned arena <= 60% of the naive sum (largest arena/naive over the thread counts):"
all2=PASS
for model in $models; do
  parts=()
  model_verdict=""
  for io in $inter_ops; do
    worst=""
    for threads in $thread_counts; do
      p=$(frac "$(get "trainrt-$io" "$model" "$threads" planned_arena_mb)" "$(get "trainrt-$io" "$model" "$threads" naive_mb)")
      [[ -n "$p" ]] && worst=$(awk -v a="$p" -v b="${worst:-0}" 'BEGIN {print (a > b ? a : b)}')
    done
    if [[ -n "$worst" ]]; then
      v=$(awk -v w="$worst" 'BEGIN {print (w <= 0.6 ? "PASS" : "FAIL")}')
      parts+=("inter-op $io $(awk -v w="$worst" 'BEGIN {printf "%.1f%%", 100 * w}') $v")
      [[ $io == "$verdict_setting" ]] && model_verdict=$v
    else
      parts+=("inter-op $io n/a")
    fi
  done
  [[ $model_verdict == PASS ]] || all2=FAIL
  printf '     %-11s %s -> %s\n' "$model" "$(IFS=';'; printf '%s' "${parts[*]}" | sed 's/;/; /g')" "${model_verdict:-n/a}"
done
echo "     all models: $all2"
echo
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (after the runs); stderr of all runs: $log"
