#!/usr/bin/env bash
# examples/trainer_test.sh CASE RESNET BERT WORKDIR — shortened runs of the example trainers.
#
#   resnet.learns / bert.learns   the loss falls well below its start (and accuracy beats chance)
#   resnet.resume / bert.resume   a run stopped at step N and resumed takes the same losses, step
#                                 by step, as the uninterrupted run; a changed setting or a damaged
#                                 checkpoint is refused with a message naming it
#   resnet.signal                 SIGINT saves a checkpoint, prints the summary, exits 130
#   resnet.errors / bert.errors   bad flags and missing data give a clear message, no crash
#   resnet.tensorboard            the event files read back with Python's tensorboard package
#   resnet.cifar                  CIFAR-10 binary batches (found by their names) train
#
# Exit 77 (ctest: Skipped) when the data (Debian's dataset-fashion-mnist, fortunes) or, for the
# TensorBoard case, Python's tensorboard package is missing.
set -uo pipefail
case_name=$1 resnet=$2 bert=$3 work=$4
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fashion=/usr/share/datasets/fashion-mnist
fortunes=/usr/share/games/fortunes
fail() { echo "FAIL: $*"; exit 1; }
need() { [ -e "$1" ] || { echo "SKIP: $1 is missing ($2)"; exit 77; }; }
command -v python3 >/dev/null || { echo "SKIP: python3 is missing (it checks the JSON output)"; exit 77; }

# Small settings so that each case takes seconds to a minute on two cores.
R=(--data "$fashion" --width 8 --batch 32 --eval-batches 4 --threads 2)
B=(--corpus "$fortunes" --vocab-size 2000 --seq-len 32 --max-predictions 5 --batch 16 --eval-batches 4 --threads 2)

# json FILE EXPR: evaluates a Python expression over `s`, the last line of FILE parsed as JSON,
# and `train`, the per-step train losses of a metrics file (`metrics(PATH)`).
py() {
  python3 - "$@" <<'PY'
import json, math, sys
def last(path):
    return json.loads(open(path).read().strip().splitlines()[-1])
def metrics(path, split="train", key="loss"):
    out = {}
    for line in open(path):
        r = json.loads(line)
        if r.get("split") == split: out[r["step"]] = r[key]   # the last record of a step wins
    return out
ok = eval(sys.argv[1])
if not ok:
    print("check failed:", sys.argv[1]); sys.exit(1)
PY
}

# run_ok NAME ARGS...: runs a trainer, output to NAME.out / NAME.err, fails on a non-zero status.
run_ok() {
  local name=$1; shift
  "$@" >"$name.out" 2>"$name.err" || { cat "$name.out" "$name.err"; fail "$name exited with $?"; }
}
# run_err NAME STATUS PATTERN ARGS...: the trainer must exit with STATUS and say PATTERN on stderr.
run_err() {
  local name=$1 want=$2 pattern=$3; shift 3
  "$@" >"$name.out" 2>"$name.err"; local rc=$?
  [ "$rc" -eq "$want" ] || { cat "$name.err"; fail "$name: exit status $rc, expected $want"; }
  grep -q -- "$pattern" "$name.err" || { cat "$name.err"; fail "$name: stderr does not say '$pattern'"; }
  echo "ok: $name -> $(head -n 1 "$name.err")"
}

case $case_name in
resnet.learns)
  need "$fashion" "Debian's dataset-fashion-mnist"
  run_ok learn "$resnet" "${R[@]}" --steps 60 --log-every 5 --metrics m.jsonl --lr 0.05
  tail -n 1 learn.out
  py 'min(metrics("m.jsonl").items())[1] > 1.8' || fail "the first losses should be near ln(10)"
  py 'last("learn.out")["loss"] < 0.6 * min(metrics("m.jsonl").items())[1]' || fail "the loss did not fall"
  py 'last("learn.out")["test_accuracy"] > 0.5' || fail "test accuracy is not well above chance (0.1)"
  ;;
resnet.resume|bert.resume)
  if [ "$case_name" = resnet.resume ]; then
    need "$fashion" "Debian's dataset-fashion-mnist"; T=("$resnet" "${R[@]}")
  else
    need "$fortunes" "Debian's fortunes"; T=("$bert" "${B[@]}")
  fi
  common=(--steps 16 --log-every 1 --checkpoint-every 4)
  run_ok whole "${T[@]}" "${common[@]}" --checkpoint-dir whole
  run_ok part1 "${T[@]}" "${common[@]}" --checkpoint-dir part --stop-after 7
  py 'last("part1.out")["stopped"] and last("part1.out")["steps"] == 7' || fail "--stop-after 7 did not stop at 7"
  run_ok part2 "${T[@]}" "${common[@]}" --checkpoint-dir part --resume
  grep -q "resumed from .*step-00000007" part2.out || fail "part2 did not resume from step 7"
  py 'last("part2.out")["resumed"] and last("part2.out")["steps"] == 16' || fail "the resumed run did not finish"
  # Step by step, the resumed run's losses are the uninterrupted run's (same threads, same bits).
  py 'metrics("whole/metrics.jsonl") == metrics("part/metrics.jsonl") and len(metrics("whole/metrics.jsonl")) == 16' ||
    { diff <(grep train whole/metrics.jsonl | cut -c1-60) <(grep train part/metrics.jsonl | cut -c1-60); fail "losses differ after resuming"; }
  echo "ok: 16 steps, stopped at 7 and resumed, identical losses"
  # A resumed run must match the checkpoint's settings; a damaged checkpoint names itself.
  run_err changed 1 "batch" "${T[@]}" "${common[@]}" --checkpoint-dir part --resume --batch 8
  cp -r part damaged && newest=$(ls damaged/step-*.safetensors | tail -n 1)
  truncate -s 1000 "$newest"
  run_err damaged 1 "$(basename "$newest")" "${T[@]}" "${common[@]}" --checkpoint-dir damaged --resume
  ;;
resnet.signal)
  need "$fashion" "Debian's dataset-fashion-mnist"
  "$resnet" "${R[@]}" --steps 100000 --log-every 1 --checkpoint-dir run >sig.out 2>sig.err &
  pid=$!
  for _ in $(seq 600); do [ -s run/metrics.jsonl ] && break; sleep 0.1; done
  [ -s run/metrics.jsonl ] || { kill -9 $pid; fail "no step finished within 60 s"; }
  kill -INT $pid; wait $pid; rc=$?
  [ "$rc" -eq 130 ] || { cat sig.out sig.err; fail "exit status $rc after SIGINT, expected 130"; }
  py 'last("sig.out")["stopped"]' || fail "the summary does not say stopped"
  ls run/step-*.safetensors >/dev/null 2>&1 || fail "no checkpoint was saved on SIGINT"
  steps=$(python3 -c 'import json;print(json.loads(open("sig.out").read().strip().splitlines()[-1])["steps"])')
  run_ok again "$resnet" "${R[@]}" --steps 100000 --checkpoint-dir run --resume --stop-after $((steps + 2))
  grep -q "resumed from .*step-0*$steps.safetensors" again.out || fail "did not resume from step $steps"
  echo "ok: SIGINT after step $steps saved a checkpoint that resumes"
  ;;
resnet.errors)
  run_err batch 2 "\-\-batch expects" "$resnet" --batch 0
  run_err unknown 2 "unknown flag '--bogus'" "$resnet" --bogus 1
  run_err value 2 "\-\-model expects resnet18|resnet34|resnet50" "$resnet" --model vgg
  run_err resume 2 "\-\-resume needs \-\-checkpoint-dir" "$resnet" --resume
  run_err nodata 1 "error (not found)" "$resnet" --data "$work/nowhere"
  mkdir -p cifar && head -c 5000 /dev/zero >cifar/data_batch_1.bin
  run_err cifar 1 "data_batch_1.bin" "$resnet" --data cifar
  if [ -e "$fashion" ]; then
    run_err cuda 1 "error (unsupported)" "$resnet" "${R[@]}" --steps 1 --device cuda
    # Mixed precision runs on the CPU too (16-bit storage, f32 arithmetic, loss scaling for f16).
    run_ok f16 "$resnet" "${R[@]}" --steps 2 --precision f16 --max-grad-norm 1
    py 'last("f16.out")["steps"] == 2 and last("f16.out")["precision"] == "f16"' || fail "--precision f16 did not train"
    run_err clip 2 "\-\-max-grad-norm" "$resnet" --max-grad-norm -1
  fi
  ;;
resnet.cifar)
  # CIFAR-10 binary batches (here random records in the real layout: a label byte, 3072 pixels).
  python3 - <<'PY'
import os, random
random.seed(1)
os.makedirs("cifar-10-batches-bin")
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    with open(os.path.join("cifar-10-batches-bin", name), "wb") as f:
        for _ in range(40):
            f.write(bytes([random.randrange(10)]) + bytes(random.randrange(256) for _ in range(3072)))
PY
  run_ok cifar "$resnet" --data . --width 8 --batch 16 --steps 6 --eval-batches 2 --threads 2
  py 'last("cifar.out")["dataset"] == "cifar10" and last("cifar.out")["steps"] == 6' || fail "did not train on CIFAR-10"
  grep -q "200 training and 40 test images \[3,32,32\]" cifar.out || fail "CIFAR-10 sizes not reported"
  ;;
resnet.tensorboard)
  need "$fashion" "Debian's dataset-fashion-mnist"
  python3 -c 'import tensorboard' 2>/dev/null || { echo "SKIP: Python's tensorboard package is not installed (pip install tensorboard)"; exit 77; }
  run_ok tb "$resnet" "${R[@]}" --steps 12 --log-every 2 --eval-every 6 --metrics m.jsonl --tensorboard tb
  python3 - <<'PY' || fail "TensorBoard does not read back what the JSONL file says"
import json, math
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator("tb", size_guidance={"scalars": 0}); acc.Reload()
tags = acc.Tags()["scalars"]
for want in ("train/loss", "train/accuracy", "train/lr", "test/loss", "test/accuracy"):
    assert want in tags, (want, tags)
jsonl = [json.loads(l) for l in open("m.jsonl")]
for split, key in (("train", "loss"), ("test", "accuracy")):
    want = {r["step"]: r[key] for r in jsonl if r["split"] == split}
    got = {e.step: e.value for e in acc.Scalars(split + "/" + key)}
    assert set(got) == set(want), (split, key, sorted(got), sorted(want))
    for s in want: assert math.isclose(got[s], want[s], rel_tol=1e-6), (split, key, s, got[s], want[s])
print("ok: tensorboard read", len(tags), "scalar tags; steps and values match the JSONL file")
PY
  ;;
bert.learns)
  need "$fortunes" "Debian's fortunes"
  run_ok learn "$bert" "${B[@]}" --steps 150 --log-every 5 --metrics m.jsonl --lr 2e-3
  tail -n 1 learn.out
  py 'min(metrics("m.jsonl").items())[1] > 6.5' || fail "the first losses should be near ln(vocab)"
  py 'last("learn.out")["loss"] < min(metrics("m.jsonl").items())[1] - 0.8' || fail "the MLM loss did not fall"
  py 'last("learn.out")["eval_loss"] < min(metrics("m.jsonl").items())[1] - 0.7' || fail "the held-out loss did not fall"
  ;;
bert.errors)
  run_err corpus 1 "nowhere" "$bert" --corpus "$work/nowhere"
  run_err seq 2 "\-\-seq-len expects" "$bert" --seq-len 4
  printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n' >vocab.txt
  mkdir -p text && printf 'one\ntwo\nthree\n' >text/a.txt
  run_err vocab 1 "MASK" "$bert" --corpus text --format lines --vocab vocab.txt --holdout 2
  ;;
*) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
