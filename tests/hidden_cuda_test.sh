#!/usr/bin/env bash
# The CPU suite on a machine without CUDA (DESIGN decision 11): inside a private mount
# namespace every CUDA library this machine has (the toolkit under /usr/local/cuda, a
# driver's libcuda, NCCL) is covered by an empty directory or /dev/null, then CPU tests and
# a trainer run there. A library that linked CUDA would not even start; one that dlopened it
# on the CPU path would fail. Reports Skipped (exit 77) where no mount namespace can be made.
#
#   hidden_cuda_test.sh BUILD_DIR RESNET_TRAINER
set -u
build=$1 trainer=$2

if [ "${TRAINRT_IN_HIDDEN_CUDA:-}" != 1 ]; then
  if ! unshare -m true 2>/dev/null; then
    echo "SKIPPED: cannot create a mount namespace here (unshare -m needs root or user namespaces)"
    exit 77
  fi
  exec unshare -m env TRAINRT_IN_HIDDEN_CUDA=1 bash "$0" "$@"
fi

fail() { echo "FAIL: $*"; exit 1; }
mount --make-rprivate / 2>/dev/null || true
empty=$(mktemp -d)
trap 'rm -rf "$empty"' EXIT
hidden=0
for dir in /usr/local/cuda /usr/local/cuda-*; do
  [ -d "$dir" ] || continue
  mount --bind "$empty" "$dir" || fail "could not hide $dir"
  hidden=$((hidden + 1))
done
# Driver and NCCL libraries installed outside the toolkit (Debian's or a driver's).
while IFS= read -r lib; do
  [ -f "$lib" ] || continue
  mount --bind /dev/null "$lib" || fail "could not hide $lib"
  hidden=$((hidden + 1))
done < <(ldconfig -p 2>/dev/null | awk '/lib(cuda|nvrtc|nccl|cublas|cudnn|cudart)[^ ]*\.so/ {print $NF}' | sort -u)
echo "hidden: $hidden CUDA paths"
[ ! -e /usr/local/cuda/lib64 ] || fail "/usr/local/cuda/lib64 is still visible"

# The CPU tests of the library's core: programs, optimizers, mixed precision, checkpoints.
export TRAINRT_CACHE_DIR=$empty/kernel-cache TRAINRT_VERIFY=1
for t in program_test optimizer_test mixed_precision_test checkpoint_test; do
  [ -x "$build/tests/$t" ] || continue
  "$build/tests/$t" --gtest_brief=1 >"$empty/$t.log" 2>&1 || { tail -40 "$empty/$t.log"; fail "$t failed with CUDA hidden"; }
  echo "ok: $t"
done
# A trainer, end to end, on Debian's Fashion-MNIST (dataset-fashion-mnist) when installed.
data=/usr/share/datasets/fashion-mnist
if [ -d "$data" ]; then
  args=(--data "$data" --width 8 --batch 32 --eval-batches 2 --threads 2)
  out=$("$trainer" "${args[@]}" --steps 3 2>&1) || { echo "$out"; fail "the trainer failed with CUDA hidden"; }
  echo "$out" | tail -1 | grep -q '"loss"' || { echo "$out"; fail "the trainer printed no final metrics"; }
  echo "ok: resnet trained 3 steps"
  # Asking for the GPU says why there is none instead of crashing.
  out=$("$trainer" "${args[@]}" --steps 1 --device cuda 2>&1) && fail "--device cuda succeeded without CUDA"
  echo "$out" | grep -qi "cuda" || { echo "$out"; fail "--device cuda did not say what is missing"; }
  echo "ok: --device cuda is refused with the reason"
else
  echo "note: $data is absent (dataset-fashion-mnist): the trainer part did not run"
fi
echo "ok: the CPU suite and a trainer run with every CUDA library hidden"
