"""How long ``resviz summary`` takes for the largest specs that resviz.limits accepts. Prints a
Markdown table.

The bounds are chosen so that anything accepted answers within about 10 s on the project's 2-core
machine: the number of blocks decides the cost (the pass runs on the meta device, so widths and
input sizes do not). Each row is one whole ``resviz summary`` process (start-up, the meta pass,
a second pass for bottlenecks at the papers' resolution, and the printed table), median of N runs.

Usage: python bench/limits_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resviz import limits  # noqa: E402

N = limits.MAX_BLOCKS
CASES: dict[str, list[str]] = {
    "resnet1202 (600 basic blocks, the deepest preset)": ["resnet1202"],
    f"{N} basic blocks, CIFAR stem": ["custom", "--set", f"layers={N}", "--set", "widths=16", "--set", "stem=cifar"],
    f"{N} bottleneck blocks in 4 stages, shortcut C, 224x224": [
        "custom", "--set", f"layers={N // 4},{N // 4},{N // 4},{N // 4}", "--set", "block=bottleneck",
        "--set", "shortcut=C",
    ],
    f"{N} pre-activation bottlenecks in {limits.MAX_STAGES} stages, stride on the 1x1": [
        "custom", "--set", ",".join([f"layers={N // limits.MAX_STAGES}"] + [str(N // limits.MAX_STAGES)] *
                                    (limits.MAX_STAGES - 1)),
        "--set", "widths=" + ",".join(["64"] * limits.MAX_STAGES), "--set", "block=bottleneck",
        "--set", "preact=true", "--set", "stride_at=1x1", "--input", "1x3x1024x1024",
    ],
}


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "resviz", "summary", *args], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    print("| spec | `resviz summary` process, median (s) |")
    print("|---|---|")
    for label, args in CASES.items():
        print(f"| {label} | {statistics.median(run(args) for _ in range(runs)):.2f} |", flush=True)


if __name__ == "__main__":
    main()
