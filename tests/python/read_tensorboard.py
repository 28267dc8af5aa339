#!/usr/bin/env python3
"""Reads the event files tests/metrics_tb_writer.cpp writes with TensorBoard's EventAccumulator
and checks tags, steps, values, wall times and the text plugin's data.

usage: read_tensorboard.py WRITER LOGDIR
Runs WRITER LOGDIR first (LOGDIR is emptied), then reads LOGDIR. Exits 77 (ctest's skip code)
with the reason when the tensorboard package cannot be imported, 1 when a check fails.
"""
import math
import os
import shutil
import struct
import subprocess
import sys

try:
    from tensorboard.backend.event_processing import event_accumulator
except Exception as e:  # ImportError, or a broken installation
    print(f"skipped: the tensorboard Python package cannot be imported ({type(e).__name__}: {e})")
    sys.exit(77)


def f32(x):
    """x rounded to float32, as TensorBoard stores simple_value."""
    return struct.unpack("f", struct.pack("f", x))[0]


failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL:", what)


def check_framing(path):
    """Every record's length and both masked CRC-32Cs, with TensorBoard's own CRC code."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
    data = open(path, "rb").read()
    pos, n = 0, 0
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        body = data[pos + 12:pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        check(length_crc == masked_crc32c(header), f"{path}: record {n}: length CRC")
        check(body_crc == masked_crc32c(body), f"{path}: record {n}: data CRC")
        pos += 16 + length
        n += 1
    check(pos == len(data) and n > 1, f"{path}: {n} whole records")


def main():
    writer, logdir = sys.argv[1], sys.argv[2]
    shutil.rmtree(logdir, ignore_errors=True)
    files = subprocess.run([writer, logdir], check=True, capture_output=True, text=True).stdout.split()
    check(len(files) == 2 and files[0] != files[1], f"two distinct event files, got {files}")
    check(sorted(os.listdir(logdir)) == sorted(os.path.basename(f) for f in files),
          f"the directory holds exactly the written files: {os.listdir(logdir)}")

    for f in files:
        check_framing(f)

    # 0: keep every event of every kind (the default samples scalars down to 10000).
    acc = event_accumulator.EventAccumulator(logdir, size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    check(sorted(tags["scalars"]) == ["eval/acc", "train/loss", "train/special"], f"scalar tags: {tags['scalars']}")
    check(tags["tensors"] == ["config"], f"tensor tags: {tags['tensors']}")

    loss = acc.Scalars("train/loss")
    check([e.step for e in loss] == list(range(15)), f"train/loss steps (both files): {[e.step for e in loss]}")
    check(all(e.value == f32(1.0 / (e.step + 1)) for e in loss), f"train/loss values: {[e.value for e in loss]}")

    acc_events = acc.Scalars("eval/acc")
    check([(e.step, e.value, e.wall_time) for e in acc_events] == [(4, 0.5, 1700000000.5), (9, 0.75, 1700000001.5)],
          f"eval/acc: {acc_events}")

    special = acc.Scalars("train/special")
    check(len(special) == 2 and math.isnan(special[0].value) and special[1].value == math.inf,
          f"train/special (nan, inf): {special}")

    config = acc.Tensors("config")
    check(len(config) == 1 and config[0].step == 0, f"config events: {config}")
    if config:
        check(list(config[0].tensor_proto.string_val) == [b"lr: 0.1\nbatch: 64"],
              f"config text: {config[0].tensor_proto.string_val}")
    check(acc.SummaryMetadata("config").plugin_data.plugin_name == "text", "config goes to the text plugin")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed: tensorboard", __import__("tensorboard").__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
