"""Benchmark of ``resviz compare``: end-to-end time and the cost of tracing every training step.

Two measurements, repeated and reported as medians because the machine may be shared:

1. end to end: ``resviz compare resnet20 plain20 --steps 20 --batch 32 --input 3x32x32 -o report.html``
   in a fresh process (imports, init traces, training, report with inline plotly.js and SVG);
2. side by side in one process: two copies of each model trained on the same batches, one plain
   and one under :func:`resviz.monitor` on every step, stepped alternately (which goes first
   alternates too) so both see the same background load. The ratio is monitored time / plain
   time (target: at most 1.3), per run and per step.

Run: ``python bench/compare_bench.py [--repeats 5] [--steps 20] [--batch 32] [--threads N]``;
prints a Markdown section for ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from resviz.measure.monitor import monitor
from resviz.model.resnet import build_model
from resviz.studies.data import load_batches
from resviz.studies.training import make_optimizer, sgd_step

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


def interleaved(steps: int, batch: int) -> tuple[float, float, list[float]]:
    """Plain and monitored copies of both models, stepped alternately on the same batches.

    Interleaving step by step exposes both variants to the same background load, which a
    shared machine changes from second to second. Returns total plain seconds, total monitored
    seconds, and the per-step ratios.
    """
    batches = load_batches("synthetic", steps + 2, batch, (3, 32, 32), seed=0)
    pairs = []
    for name in MODELS:
        copies = []
        for _ in range(2):
            torch.manual_seed(0)
            net = build_model(name, device="cpu").train()
            copies.append((net, make_optimizer(net, 0.05)))
        pairs.append(copies)
    plain_t, mon_t, ratios = 0.0, 0.0, []
    with contextlib.ExitStack() as stack:
        for copies in pairs:
            stack.enter_context(monitor(copies[1][0], every=1))
        for step in range(steps + 1):
            x, y = batches[step]
            timing = [0.0, 0.0]
            for which in ((0, 1) if step % 2 == 0 else (1, 0)):
                start = time.perf_counter()
                for copies in pairs:
                    net, opt = copies[which]
                    sgd_step(net, opt, x, y)
                timing[which] = time.perf_counter() - start
            if step == 0:
                continue  # warm-up
            plain_t += timing[0]
            mon_t += timing[1]
            ratios.append(timing[1] / timing[0])
    return plain_t, mon_t, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for the end-to-end subprocess
    plain: list[float] = []
    traced: list[float] = []
    ratios: list[float] = []
    step_ratios: list[float] = []
    for _ in range(args.repeats):
        p, m, per_step = interleaved(args.steps, args.batch)
        plain.append(p)
        traced.append(m)
        ratios.append(m / p)
        step_ratios += per_step
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
    print(f"| ratio monitored / plain per run (target <= 1.3) | {statistics.median(ratios):.2f}x | "
          f"{', '.join(f'{r:.2f}' for r in ratios)} |")
    print(f"| ratio per step, median of {len(step_ratios)} steps | {statistics.median(step_ratios):.2f}x | "
          f"quartiles {statistics.quantiles(step_ratios, n=4)[0]:.2f} to "
          f"{statistics.quantiles(step_ratios, n=4)[2]:.2f} |")


if __name__ == "__main__":
    main()
