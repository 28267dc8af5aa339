#!/usr/bin/env python3
"""The ctest labels of a build tree select what they must (ctest entry test_labels).

  test_labels_test.py CTEST BUILD_DIR

  -L gpu            the cases of the GPU test binaries, never an emulated one;
  -L cuda_emulated  "emulated.<case>" for every gpu case (the NCCL communicator's too, over
                    the emulated NCCL), and the emulator's own tests (checked, and "unchecked.<case>"), none of
                    which may skip;
  -LE gpu           everything else: with -L gpu, the whole suite;
and every GoogleTest case carries TIMEOUT 900 and the tests' environment (the build tree's
kernel cache, the IR verifier), which a flattened gtest_discover_tests property list once lost.
"""
import json
import subprocess
import sys


def listing(ctest, build, *args):
    out = subprocess.run([ctest, "--test-dir", build, "--show-only=json-v1", *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["tests"]


def props(test):
    return {p["name"]: p["value"] for p in test.get("properties", [])}


def main():
    ctest, build = sys.argv[1], sys.argv[2]
    every = listing(ctest, build)
    gpu = [t["name"] for t in listing(ctest, build, "-L", "gpu")]
    emulated = [t["name"] for t in listing(ctest, build, "-L", "cuda_emulated")]
    rest = {t["name"] for t in listing(ctest, build, "-LE", "gpu")}
    print(f"tests: {len(every)}; -L gpu: {len(gpu)}; -L cuda_emulated: {len(emulated)}; -LE gpu: {len(rest)}")
    problems = []
    if not gpu:
        problems.append("ctest -L gpu selects no test")
    if not emulated:
        problems.append("ctest -L cuda_emulated selects no test")
    if len(gpu) + len(rest) != len(every):
        problems.append(f"-L gpu ({len(gpu)}) and -LE gpu ({len(rest)}) do not add up to the suite ({len(every)})")
    for name in gpu:
        if name.startswith("emulated."):
            problems.append(f"{name} is labelled gpu")
        elif "emulated." + name not in emulated:
            problems.append(f"the gpu case {name} has no emulated.{name} (label cuda_emulated)")
        if name in rest:
            problems.append(f"-LE gpu selects the gpu case {name}")
    for name in emulated:
        if name.startswith("emulated.") and name.removeprefix("emulated.") not in gpu:
            problems.append(f"{name} has no gpu counterpart")
    for t in every:
        if not any("--gtest_filter" in c for c in t.get("command", [])):
            continue
        p = props(t)
        env = p.get("ENVIRONMENT", [])
        if p.get("TIMEOUT") != 900:
            problems.append(f"{t['name']}: TIMEOUT is {p.get('TIMEOUT')}, not 900")
        if not any(e.startswith("TRAINRT_CACHE_DIR=") for e in env) or "TRAINRT_VERIFY=1" not in env:
            problems.append(f"{t['name']}: ENVIRONMENT is {env}")
        if "cuda_emulated" in p.get("LABELS", []):
            checking = "TRAINRT_CUDA_EMULATED_CHECK=0" if t["name"].startswith("unchecked.") else "TRAINRT_CUDA_EMULATED_CHECK=1"
            if not any(e.startswith("TRAINRT_CUDA_DEVICE=emulated") for e in env) or checking not in env:
                problems.append(f"{t['name']}: does not select the emulated device with {checking} ({env})")
            if not any("SKIPPED" in r for r in p.get("FAIL_REGULAR_EXPRESSION", [])):
                problems.append(f"{t['name']}: a skip would not fail it")
    if problems:
        print("test labels:\n  " + "\n  ".join(problems))
        return 1
    print("test labels: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
