"""The tracer on models resviz did not build, against a plain forward+backward (issue: any residual network).

Goal: with the structure found once (cached), a full trace costs at most 1.3x a plain
forward+backward, on resviz's resnet50 and on a torchvision-style resnet50 and a ViT-style model of
similar size (batch 8, 112x112), the two last from tests/families (faithful re-implementations,
as torchvision and timm do not import with a CPU-only torch). Plain steps and traces alternate, so a
neighbour's load hits both alike; medians, their spread and the ratio of medians are printed, wall
and CPU time (``time.process_time``, which does not count waiting for a core).

    PYTHONPATH=. python bench/trace_families.py --reps 5 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import resviz
from resviz.measure.outputs import logits
from resviz.measure.structure import discover
from tests.families import tv_resnet, vit


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "resviz resnet50": resviz.build_model("resnet50", device="cpu"),
        "torchvision-style resnet50": tv_resnet.build(block="bottleneck", layers=(3, 4, 6, 3),
                                                      widths=(64, 128, 256, 512), num_classes=1000),
        "ViT-S/16-style (112x112)": vit.build(img_size=112, patch_size=16, embed_dim=384, depth=12, num_heads=6,
                                              num_classes=1000),
    }


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.randn(8, 3, 112, 112)
    y = torch.randint(0, 1000, (8,))
    print("| model | plain fwd+bwd (median, range) | trace (median, range) | ratio wall | ratio CPU |")
    print("|---|---|---|---|---|")
    for name, model in _models().items():
        model.train()

        def plain(model: nn.Module = model, name: str = name) -> None:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(logits(model(x), name), y).backward()

        def traced(model: nn.Module = model) -> None:
            resviz.trace(model, inputs=x, targets=y)

        t0 = time.perf_counter()
        found = discover(model, tuple(x.shape))
        first = time.perf_counter() - t0
        plain()
        traced()  # warm-up: the structure is cached from here on
        runs: dict[str, list[tuple[float, float]]] = {"plain": [], "trace": []}
        for _ in range(args.reps):
            runs["plain"].append(_time(plain))
            runs["trace"].append(_time(traced))
        med = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
        rng = {k: (min(w for w, _ in v), max(w for w, _ in v)) for k, v in runs.items()}
        print(f"| {name} ({len(found.sites)} blocks; discovery {first:.2f} s once) "
              f"| {med['plain'] * 1e3:.0f} ms ({rng['plain'][0] * 1e3:.0f}-{rng['plain'][1] * 1e3:.0f}) "
              f"| {med['trace'] * 1e3:.0f} ms ({rng['trace'][0] * 1e3:.0f}-{rng['trace'][1] * 1e3:.0f}) "
              f"| {med['trace'] / med['plain']:.2f}x | {cpu['trace'] / cpu['plain']:.2f}x |")


if __name__ == "__main__":
    main()
