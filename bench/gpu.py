"""GPU cost of a full trace: resnet50, batch 64, 224x224, fp32 and bf16, time and peak memory.

Goals (issue 3): a full trace (activation statistics + branch gradients + parameter norms) costs at
most 1.25x a plain eager forward+backward and at most 1.10x its peak GPU memory. Plain steps and
traces alternate on the same model; times are CUDA-event medians. Without CUDA the script says so
and exits 0, so it can sit in any check list. Runs in about a minute on one H100/H200.

    python bench/gpu.py [--model resnet50] [--input 64x3x224x224] [--reps 10] [--channels-last]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F

import resviz
from resviz.api import parse_input_size
from resviz.model.resnet import build_model


def _measure(fn: Callable[[], object], reps: int) -> tuple[list[float], int]:
    """Milliseconds per run (CUDA events) and the peak memory of one run above the baseline."""
    times: list[float] = []
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return times, torch.cuda.max_memory_allocated() - base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--input", default="64x3x224x224")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device here (torch", torch.__version__, "): nothing measured, skipping.")
        return
    shape = parse_input_size(args.input)
    torch.manual_seed(0)
    model = build_model(args.model, device="cuda").train()
    x = torch.randn(shape, device="cuda")
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, model.spec.num_classes, (shape[0],), device="cuda")
    print(f"{args.model} @ {args.input}, {torch.cuda.get_device_name()}, torch {torch.__version__}")
    heads = ("plain ms", "trace ms", "ratio", "plain MiB", "trace MiB", "mem")
    print(f"{'dtype':6s} " + " ".join(f"{h:>9s}" for h in heads))
    for dtype in (torch.float32, torch.bfloat16):
        amp = dtype != torch.float32

        def plain(dtype: torch.dtype = dtype, amp: bool = amp) -> None:
            model.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=dtype, enabled=amp):
                out = model(x)
            F.cross_entropy(out.float(), y).backward()

        def traced(dtype: torch.dtype = dtype) -> None:
            resviz.trace(model, inputs=x, targets=y, dtype=dtype, channels_last=args.channels_last)

        for fn in (plain, traced, plain, traced):  # warm-up: cuDNN autotuning, allocator
            fn()
        model.zero_grad(set_to_none=True)
        tp, mp = _measure(plain, args.reps)
        model.zero_grad(set_to_none=True)
        tt, mt = _measure(traced, args.reps)
        p, t = statistics.median(tp), statistics.median(tt)
        name = str(dtype).removeprefix("torch.")
        cells = (f"{p:9.1f}", f"{t:9.1f}", f"{t / p:9.2f}", f"{mp / 2**20:9.0f}", f"{mt / 2**20:9.0f}",
                 f"{mt / max(mp, 1):9.2f}")
        print(f"{name:6s} " + " ".join(cells))
    print("goals: time ratio <= 1.25, memory ratio <= 1.10")


if __name__ == "__main__":
    main()
