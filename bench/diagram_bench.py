"""Wall-clock cost of ``resviz diagram`` as whole processes, against ``python -c "import torch"``.

Goals (issue 4): ``resviz diagram resnet50 -o out.svg`` within 1.6x the torch import measured in
the same run, and ``--view layers`` of preact_resnet1001 under 10 s. Runs are interleaved so that
background load hits both sides alike; the median of each side is compared (min shown too).

    .venv/bin/python bench/diagram_bench.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
RESVIZ = [PY, "-m", "resviz"] if not (Path(PY).parent / "resviz").exists() else [str(Path(PY).parent / "resviz")]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        torch_cmd = [PY, "-c", "import torch"]
        r50_cmd = [*RESVIZ, "diagram", "resnet50", "-o", os.path.join(tmp, "out.svg")]
        big_cmd = [*RESVIZ, "diagram", "preact_resnet1001", "--view", "layers", "-o", os.path.join(tmp, "l.svg")]
        timed(torch_cmd)  # warm the file cache once for both sides
        torch_t: list[float] = []
        r50_t: list[float] = []
        for _ in range(args.repeats):
            torch_t.append(timed(torch_cmd))
            r50_t.append(timed(r50_cmd))
        big_t = [timed(big_cmd) for _ in range(max(3, args.repeats // 2))]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    med_torch, med_r50 = statistics.median(torch_t), statistics.median(r50_t)
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"commit {commit}, {args.repeats} interleaved runs")
    print("| command | median s | min s | goal |")
    print("|---|---|---|---|")
    print(f"| python -c 'import torch' | {med_torch:.2f} | {min(torch_t):.2f} | baseline |")
    print(f"| resviz diagram resnet50 -o out.svg | {med_r50:.2f} | {min(r50_t):.2f} | "
          f"<= 1.6x baseline: {med_r50 / med_torch:.2f}x (min/min {min(r50_t) / min(torch_t):.2f}x) |")
    print(f"| resviz diagram preact_resnet1001 --view layers -o l.svg | {statistics.median(big_t):.2f} | "
          f"{min(big_t):.2f} | < 10 s |")


if __name__ == "__main__":
    main()
