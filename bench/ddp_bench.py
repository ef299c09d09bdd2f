"""The monitor under DistributedDataParallel: training-loop slowdown with ``every=10`` and the
share of a monitored step the exchange between ranks takes.

Run: ``torchrun --standalone --nproc_per_node 2 bench/ddp_bench.py [--steps 20] [--rounds 2]``
(gloo on the CPU). resnet50 at 112x112, batch 8 per rank, SGD; each round times one loop without
the monitor and one with it (in alternating order), reading the series at the end of the monitored
loop (the one ``all_gather``). Rank 0 prints a Markdown table: median and mean step time of each
loop (the mean includes the recorded steps: the loop's slowdown), and the time of reading the
series (the exchange and the one host copy) against a median step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import resviz


def loop(model: torch.nn.Module, steps: int, every: int | None) -> tuple[list[float], float]:
    """Per-step seconds of ``steps`` training steps, and the seconds reading the series took."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(dist.get_rank())
    x, y = torch.randn(8, 3, 112, 112, generator=g), torch.randint(0, 1000, (8,), generator=g)
    times: list[float] = []
    read = 0.0

    def steps_of() -> None:
        for _ in range(steps):
            dist.barrier()
            start = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)

    if every is None:
        steps_of()
        return times, read
    with resviz.monitor(model, every=every) as mon:
        steps_of()
        dist.barrier()
        start = time.perf_counter()
        series = mon.series
        read = time.perf_counter() - start
    assert series.reduce == "global" and len(series.snapshots) == -(-steps // every)
    return times, read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = DistributedDataParallel(resviz.build_model("resnet50"))
    loop(model, 2, None)  # warm-up
    plain: list[float] = []
    monitored: list[float] = []
    reads: list[float] = []
    for r in range(args.rounds):
        for every in ((None, 10) if r % 2 == 0 else (10, None)):
            times, read = loop(model, args.steps, every)
            (plain if every is None else monitored).extend(times)
            if every is not None:
                reads.append(read)
    if dist.get_rank() == 0:
        p, m, rd = statistics.median(plain), statistics.median(monitored), statistics.median(reads)
        pm, mm = statistics.fmean(plain), statistics.fmean(monitored)
        print("| loop | median step (s) | mean step (s) |\n|---|---|---|")
        print(f"| plain DDP | {p:.3f} | {pm:.3f} |\n| monitored, every=10 | {m:.3f} | {mm:.3f} |")
        print(f"\nloop slowdown (mean, recorded steps included) {mm / pm - 1:+.1%}, median {m / p - 1:+.1%}; "
              f"reading the series (exchange + host copy): {rd * 1e3:.1f} ms = {rd / m:.1%} of a median step; "
              f"{len(plain)} steps each, world {dist.get_world_size()}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} thread(s) per rank")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
