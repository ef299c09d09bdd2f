"""A compiled resnet20 training loop with and without ``resviz.monitor``: time and recompilations.

For each backend, two copies of one seeded resnet20 are compiled and trained on the same batches
for ``--steps`` SGD steps, one plain and one under ``resviz.monitor(every=...)``; the loops run
alternately (plain, monitored, plain, monitored ...) ``--repeats`` times after a warm-up loop, so
both see the same machine load. A counting backend around the real one reports how many graphs
dynamo compiled during the warm-up loop and after it (the measured loops should compile none) and
how many steps ran the compiled graph (the recorded steps run eagerly). Also timed: the loop of
an eager third copy (interleaved too), for scale, and what attaching a monitor costs in a fresh
process (it loads torch.compile).

Usage::

    PYTHONPATH=. python bench/compile_bench.py --backends aot_eager inductor --steps 30 --every 10
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import resviz
from resviz.model.resnet import build_model
from tests.compiling import Counting


def _loop(model: nn.Module, call: Callable[[Tensor], Tensor], batches: list[tuple[Tensor, Tensor]],
          every: int | None) -> float:
    """Seconds for one training loop over ``batches`` (under a monitor when ``every`` is given)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    if every is None:
        for x, y in batches:
            opt.zero_grad()
            F.cross_entropy(call(x), y).backward()
            opt.step()
    else:
        with resviz.monitor(call, every=every) as mon:
            for x, y in batches:
                opt.zero_grad()
                loss = F.cross_entropy(call(x), y)
                loss.backward()
                opt.step()
                mon.log_loss(loss)
        assert len(mon.series.snapshots) == -(-len(batches) // every)
    return time.perf_counter() - start


def bench_backend(backend: str, args: argparse.Namespace, batches: list[tuple[Tensor, Tensor]]) -> dict[str, Any]:
    torch.manual_seed(0)
    base = build_model("resnet20", device="cpu")
    plain, watched = copy.deepcopy(base), copy.deepcopy(base)
    cp, cw = Counting(backend), Counting(backend)
    fp, fw = torch.compile(plain, backend=cp), torch.compile(watched, backend=cw)
    t0 = time.perf_counter()
    _loop(plain, fp, batches[:2], None)
    _loop(watched, fw, batches[: args.every + 2], args.every)  # a recorded step and compiled ones
    warm = time.perf_counter() - t0
    warm_compiles = (cp.compiles, cw.compiles)
    runs_before = cw.runs
    eager_model = copy.deepcopy(base)
    _loop(eager_model, eager_model, batches[:2], None)
    times: dict[str, list[float]] = {"eager": [], "plain": [], "monitored": []}
    for _ in range(args.repeats):
        times["eager"].append(_loop(eager_model, eager_model, batches, None))
        times["plain"].append(_loop(plain, fp, batches, None))
        times["monitored"].append(_loop(watched, fw, batches, args.every))
    plain_s, mon_s = statistics.median(times["plain"]), statistics.median(times["monitored"])
    return {
        "backend": backend, "warm_up_s": warm, "eager_s": statistics.median(times["eager"]),
        "plain_s": plain_s, "monitored_s": mon_s,
        "ratio": mon_s / plain_s, "times": times, "warm_up_compiles": warm_compiles,
        "later_compiles": (cp.compiles - warm_compiles[0], cw.compiles - warm_compiles[1]),
        "compiled_steps_monitored": (cw.runs - runs_before) // args.repeats,
    }


def attach_cost() -> float:
    """Seconds to attach and detach a first monitor in a fresh process (loads torch.compile)."""
    code = ("import time, torch, resviz; m = torch.nn.Linear(2, 2); t = time.perf_counter()\n"
            "with resviz.monitor(m): pass\nprint(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["aot_eager"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(args.batch, 3, 32, 32, generator=gen), torch.randint(0, 10, (args.batch,), generator=gen))
               for _ in range(args.steps)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, resnet20, batch {args.batch}, "
          f"{args.steps} steps, every={args.every}, median of {args.repeats}")
    print("| backend | warm-up s | eager s | compiled s | compiled + monitor s | ratio | compiles at warm-up "
          "(plain, monitored) | compiles after | compiled steps of monitored loop |")
    print("|---|---|---|---|---|---|---|---|---|")
    spread: list[str] = []
    for backend in args.backends:
        r = bench_backend(backend, args, batches)
        print(f"| {r['backend']} | {r['warm_up_s']:.1f} | {r['eager_s']:.2f} | {r['plain_s']:.2f} | "
              f"{r['monitored_s']:.2f} | {r['ratio']:.3f} | {r['warm_up_compiles']} | {r['later_compiles']} | "
              f"{r['compiled_steps_monitored']} of {args.steps} |")
        spread.append(f"{backend}: " + ", ".join(f"{k} {[round(t, 2) for t in v]}" for k, v in r["times"].items()))
    print("every loop, s:", "; ".join(spread))
    print(f"first monitor attach in a fresh process: {attach_cost():.2f} s")


if __name__ == "__main__":
    main()
