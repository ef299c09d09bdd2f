"""Summarising a model a factory builds: on the meta device (what ``resviz summary pkg.mod:factory``
does) against building it for real first and counting that module.

A ViT-B/16-sized model (86 M parameters, the test-local ViT family at 224x224) and a ResNet-50-sized
torchvision-style one. Each measurement runs in a fresh process, so that peak memory (``ru_maxrss``)
belongs to that path alone. Usage: ``PYTHONPATH=. python bench/byo_summary.py [--runs 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import torch
from resviz.api import static_summary
from resviz.api.factories import load_factory
from resviz.api.summaries import factory_summary
target, path = sys.argv[1], sys.argv[2]
torch.set_num_threads(1)
start = time.perf_counter()
if path == "meta":
    _, s = factory_summary(target, "1x3x224x224")
else:
    s = static_summary(load_factory(target), "1x3x224x224")
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "params": s.total_params, "blocks": len(s.blocks)}))
"""

MODELS = {
    "ViT-B/16-style (tests/families/vit.py)": "bench.byo_models:vit_b16",
    "resnet50-style (tests/families/tv_resnet.py)": "bench.byo_models:resnet50",
}


def run(target: str, path: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, target, path], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| model | path | seconds, median (range) | peak RSS MiB, median | parameters | blocks |")
    print("|---|---|---|---|---|---|")
    for label, target in MODELS.items():
        for path in ("meta", "real"):
            rows = [run(target, path) for _ in range(args.runs)]
            secs = [r["seconds"] for r in rows]
            print(f"| {label} | {path} | {statistics.median(secs):.2f} ({min(secs):.2f}-{max(secs):.2f}) | "
                  f"{statistics.median(r['rss_mib'] for r in rows):.0f} | {int(rows[0]['params']):,} | "
                  f"{int(rows[0]['blocks'])} |")


if __name__ == "__main__":
    main()
