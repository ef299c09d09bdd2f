"""Benchmarks of the static analysis (issue: core). Prints a Markdown table.

1. ``summarize(resnet152)`` at 64x3x224x224 against ``torchinfo.summary`` on the same input, side by
   side in one run (goal: resviz at most 1/20 of torchinfo).
2. ``resviz summary resnet50`` as a whole process against ``python -c "import torch"``, alternated,
   median of N runs (goal: at most 1.5x).
3. The cost of ``summarize`` against depth for pre-activation CIFAR nets 9n+2 (goal: linear, and
   preact_resnet1001 under 5 s).

Usage: python bench/static_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _median_time(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_torchinfo(runs: int) -> tuple[float, float]:
    import torch
    import torchinfo

    from resviz.api import summarize
    from resviz.model.resnet import build_model

    shape = (64, 3, 224, 224)
    ours = _median_time(lambda: summarize("resnet152", input_size=shape), runs)
    torch.manual_seed(0)
    model = build_model("resnet152", device="cpu")
    theirs = _median_time(lambda: torchinfo.summary(model, input_size=shape, verbose=0, device="cpu"), 1)
    return ours, theirs


def bench_process(runs: int) -> tuple[float, float]:
    exe = str(Path(sys.executable).with_name("resviz"))
    t_torch, t_cli = [], []
    for _ in range(runs):
        for cmd, acc in (([sys.executable, "-c", "import torch"], t_torch), ([exe, "summary", "resnet50"], t_cli)):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            acc.append(time.perf_counter() - t)
    return statistics.median(t_torch), statistics.median(t_cli)


def bench_depth() -> list[tuple[int, float]]:
    from resviz.api import summarize
    from resviz.zoo import get_spec

    base = get_spec("preact_resnet164")
    out = []
    for n in (12, 37, 62, 87, 111):
        spec = dataclasses.replace(base, name=f"preact{9 * n + 2}", layers=(n, n, n))
        t = time.perf_counter()
        summarize(spec)
        out.append((9 * n + 2, time.perf_counter() - t))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}, {sys.platform}, python {sys.version.split()[0]}\n")
    ours, theirs = bench_torchinfo(args.runs)
    print("| measurement | resviz | reference | ratio | goal |\n|---|---|---|---|---|")
    print(f"| summarize resnet152 @ 64x3x224x224 vs torchinfo.summary | {ours:.3f} s | {theirs:.2f} s "
          f"| 1/{theirs / ours:.0f} | <= 1/20 |")
    t_torch, t_cli = bench_process(args.runs)
    print(f"| `resviz summary resnet50` process vs `python -c 'import torch'` | {t_cli:.2f} s | {t_torch:.2f} s "
          f"| {t_cli / t_torch:.2f}x | <= 1.5x |")
    print("\n| depth (preact 9n+2) | summarize (s) | s per 100 layers |\n|---|---|---|")
    for depth, t in bench_depth():
        print(f"| {depth} | {t:.2f} | {100 * t / depth:.3f} |")


if __name__ == "__main__":
    main()
