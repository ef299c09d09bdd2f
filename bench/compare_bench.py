"""Benchmark of ``resviz compare``: end-to-end time and the cost of tracing every training step.

Two measurements, repeated and reported as medians because the machine may be shared:

1. end to end: ``resviz compare resnet20 plain20 --steps 20 --batch 32 --input 3x32x32 -o report.html``
   in a fresh process (imports, init traces, training, report with inline plotly.js and SVG);
2. side by side in one process: the same 20 steps of both models, once without statistics (plain
   training) and once with :func:`resviz.monitor` on every step, alternating which runs first.
   The ratio is monitored time / plain time (target: at most 1.3).

Run: ``python bench/compare_bench.py [--repeats 5] [--steps 20] [--batch 32]``; prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from resviz.analysis.data import load_batches
from resviz.analysis.training import train
from resviz.model.resnet import build_model

MODELS = ("resnet20", "plain20")


def end_to_end(steps: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "resviz", "compare", *MODELS, "--steps", str(steps), "--batch", str(batch),
            "--input", "3x32x32", "--device", "cpu", "-q", "-o", str(Path(tmp) / "report.html"),
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - start


def training_time(steps: int, batch: int, every: int | None) -> float:
    batches = load_batches("synthetic", steps + 1, batch, (3, 32, 32), seed=0)
    models = []
    for name in MODELS:
        torch.manual_seed(0)
        models.append((name, build_model(name, device="cpu")))
    train(models, batches, 1, every=every)  # warm-up step (allocator, kernels)
    start = time.perf_counter()
    runs, _ = train(models, batches, steps, every=every)
    elapsed = time.perf_counter() - start
    assert all(r.steps_done == steps for r in runs)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    plain: list[float] = []
    traced: list[float] = []
    ratios: list[float] = []
    for i in range(args.repeats):
        order = (None, 1) if i % 2 == 0 else (1, None)
        times = {every: training_time(args.steps, args.batch, every) for every in order}
        plain.append(times[None])
        traced.append(times[1])
        ratios.append(times[1] / times[None])
    e2e = [end_to_end(args.steps, args.batch) for _ in range(max(1, args.repeats // 2))]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"## compare ({time.strftime('%Y-%m-%d')}, commit {head or 'unknown'})\n")
    print(f"Machine: {os.cpu_count()}-core CPU, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          "shared with other jobs, so medians of repeated runs.\n")
    print("| measurement | median | runs |")
    print("|---|---:|---|")
    print(f"| `resviz compare {' '.join(MODELS)} --steps {args.steps} --batch {args.batch} --input 3x32x32` "
          f"end to end | {statistics.median(e2e):.1f} s | {', '.join(f'{t:.1f}' for t in e2e)} |")
    print(f"| {args.steps} steps x 2 models, plain training | {statistics.median(plain):.2f} s | "
          f"{', '.join(f'{t:.2f}' for t in plain)} |")
    print(f"| same, monitor on every step | {statistics.median(traced):.2f} s | "
          f"{', '.join(f'{t:.2f}' for t in traced)} |")
    print(f"| ratio monitored / plain (target <= 1.3) | {statistics.median(ratios):.2f}x | "
          f"{', '.join(f'{r:.2f}' for r in ratios)} |")


if __name__ == "__main__":
    main()
