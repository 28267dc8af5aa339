#!/usr/bin/env python3
"""Sums oneDNN's verbose log per primitive and per training step.

  DNNL_VERBOSE=1 trainrt_step_bench --model cnn --warmup 1 --steps 5 > v.txt
  onednn_verbose_summary.py v.txt 6 1

Arguments: the log, the number of steps it holds (warm-up plus timed), and how many of the
first steps to skip (first-touch page faults make them slow). Every step runs the same
primitives in the same order, so the log splits into equal per-step slices. Prints the mean
ms per step of each (primitive, propagation kind, implementation, problem), heaviest first,
then totals per primitive kind. Works on libtorch's log too (its convolutions use oneDNN).
"""
import collections
import sys


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, total, skip = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path) as f:
        rows = [line.strip().split(",") for line in f if line.startswith(("onednn_verbose,exec", "dnnl_verbose,exec"))]
    per_step, rest = divmod(len(rows), total)
    if rest or per_step == 0:
        print(f"{len(rows)} exec lines do not split into {total} equal steps", file=sys.stderr)
        return 1
    steps = total - skip
    by_key = collections.defaultdict(float)
    calls = collections.Counter()
    for r in rows[per_step * skip:]:
        # exec,cpu,<primitive>,<impl>,<prop_kind>,<memory descriptors>,<attrs>,<aux>,<problem>,<ms>
        primitive, impl, prop, mds, problem, ms = r[3], r[4], r[5], r[6], r[-2], float(r[-1])
        # A reorder's descriptors read "src_f32::blocked:abcd:f0 dst_f32::blocked:aBcd16b:f0".
        tags = [md.split(":")[3] for md in mds.split() if md.count(":") >= 4]
        layouts = "->".join(tags) if primitive == "reorder" else ""
        key = (primitive, prop, impl, problem, layouts)
        by_key[key] += ms
        calls[key] += 1
    for key, ms in sorted(by_key.items(), key=lambda kv: -kv[1]):
        primitive, prop, impl, problem, layouts = key
        print(f"{ms / steps:9.3f} ms  x{calls[key] // steps}  {primitive:<12} {prop:<17} {impl:<16} {problem} {layouts}")
    by_kind = collections.defaultdict(float)
    for (primitive, prop, *_), ms in by_key.items():
        by_kind[f"{primitive} {prop}"] += ms / steps
    print(f"\noneDNN per step: {sum(by_kind.values()):.2f} ms in {per_step} calls (mean of {steps} steps)")
    for kind, ms in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<34} {ms:9.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
