"""Benchmarks and measurements of the signal and shatter studies (issue: studies-a). Prints Markdown.

1. Wall time of ``signal_study`` (defaults: one N(0, 1) batch 64x3x32x32, BatchNorm in train mode)
   and of ``shatter_study`` (defaults: 256 points of 3x32x32, BatchNorm eval and train with frozen
   statistics) on resnet110 and its plain twin plain110 (goal: each under 15 s on a 2-core CPU).
   The load average is printed before and after, since other processes share the CPU.
2. ``--findings``: both studies on resnet20/56/110, preact_resnet164 and their plain twins, and the
   findings sentences computed from the numbers (what bench/RESULTS.md quotes).

Usage: python bench/study_bench_a.py [--runs 3] [--findings] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def _models(names: list[str]) -> list[tuple[str, Any]]:
    import torch

    from resviz.model.resnet import build_model

    out = []
    for n in names:
        torch.manual_seed(0)
        out.append((n, build_model(n, device="cpu")))
    return out


def _time(fn: Callable[[], Any], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def bench_times(runs: int) -> None:
    from resviz.studies.shatter import shatter_study
    from resviz.studies.signal import signal_study

    models = _models(["resnet110", "plain110"])
    print(f"load average before: {os.getloadavg()}")
    print("| study (resnet110 + plain110, defaults) | median s | runs s |\n|---|---|---|")
    for label, fn in (("signal_study", lambda: signal_study(models)), ("shatter_study", lambda: shatter_study(models))):
        med, times = _time(fn, runs)
        print(f"| {label} | {med:.2f} | {', '.join(f'{t:.2f}' for t in times)} |")
    print(f"load average after: {os.getloadavg()}")


def findings() -> None:
    from resviz.render.report.study_signal import shatter_findings, signal_findings
    from resviz.studies.shatter import shatter_study
    from resviz.studies.signal import signal_study

    names = ["resnet20", "resnet56", "resnet110", "preact_resnet164",
             "plain20", "plain56", "plain110", "plain_preact_resnet164"]
    models = _models(names)
    t = time.perf_counter()
    sig = signal_study(models)
    print(f"\n## signal ({time.perf_counter() - t:.1f} s)\n")
    print("\n".join(f"- {s}" for s in signal_findings(sig)))
    t = time.perf_counter()
    sh = shatter_study(models)
    print(f"\n## shatter ({time.perf_counter() - t:.1f} s)\n")
    print("\n".join(f"- {s}" for s in shatter_findings(sh)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--findings", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bench_times(args.runs)
    if args.findings:
        findings()


if __name__ == "__main__":
    main()
