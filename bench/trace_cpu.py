"""CPU cost of a full trace and of the training-loop monitor, side by side in one run.

Goals (issue 3): a full trace (activation statistics + branch gradients + parameter norms) costs
at most 1.3x a plain forward+backward of resnet50 at batch 8, 112x112; ``monitor(every=10)`` slows
a training loop by less than 5%. Plain and traced runs alternate, so a neighbour's load hits both
alike; the ratio of medians is reported, and that of the fastest runs (least disturbed). CPU time
(``time.process_time``) is reported too: on a shared machine it does not count the time the process
waits for a core, so with one thread it is the steadiest measure of the work itself.

    python bench/trace_cpu.py                 # resnet50, 8x3x112x112
    python bench/trace_cpu.py --reps 3 --model resnet20 --input 32x3x32x32
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import resviz
from resviz.api import parse_input_size
from resviz.model.resnet import build_model


def _time(fn: Callable[[], object], cpu: list[float] | None = None) -> float:
    """Wall seconds of one call; its CPU seconds go to ``cpu`` when given."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    t1, c1 = time.perf_counter(), time.process_time()
    if cpu is not None:
        cpu.append(c1 - c0)
    return t1 - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--input", default="8x3x112x112")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--loop", type=int, default=20, help="training steps per monitor measurement")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = parse_input_size(args.input)
    torch.manual_seed(0)
    model = build_model(args.model, device="cpu").train()
    x = torch.randn(shape)
    y = torch.randint(0, model.spec.num_classes, (shape[0],))

    def plain_step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def traced() -> None:
        resviz.trace(model, inputs=x, targets=y)

    opt = torch.optim.SGD(model.parameters(), lr=1e-6)

    def loop() -> None:
        for _ in range(args.loop):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

    def monitored() -> None:
        with resviz.monitor(model, every=10):
            loop()

    plain_step()  # warm-up: allocator, kernels, imports
    traced()
    plain, trace, plain_cpu, trace_cpu = [], [], [], []
    for _ in range(args.reps):
        plain.append(_time(plain_step, plain_cpu))
        trace.append(_time(traced, trace_cpu))
    loops, mons = [], []
    for _ in range(max(2, args.reps // 2)):
        loops.append(_time(loop))
        mons.append(_time(monitored))
    p, t = statistics.median(plain), statistics.median(trace)
    lo, mo = statistics.median(loops), statistics.median(mons)
    best = min(trace) / min(plain)
    print(f"{args.model} @ {args.input}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"plain forward+backward  {p * 1e3:8.1f} ms  (runs: {', '.join(f'{v * 1e3:.0f}' for v in plain)})")
    print(f"full trace              {t * 1e3:8.1f} ms  (runs: {', '.join(f'{v * 1e3:.0f}' for v in trace)})")
    print(f"trace / plain           {t / p:8.2f} x   (goal <= 1.30; ratio of fastest runs {best:.2f} x)")
    pc, tc = statistics.median(plain_cpu), statistics.median(trace_cpu)
    print(f"CPU time, plain / trace {pc * 1e3:8.1f} / {tc * 1e3:.1f} ms  "
          f"(ratio of medians {tc / pc:.2f} x, of minima {min(trace_cpu) / min(plain_cpu):.2f} x)")
    print(f"{args.loop}-step loop            {lo * 1e3:8.1f} ms")
    print(f"same loop, monitor(10)  {mo * 1e3:8.1f} ms")
    print(f"monitor slowdown        {100 * (mo / lo - 1):8.1f} %   (goal < 5)")


if __name__ == "__main__":
    main()
