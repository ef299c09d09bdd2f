"""The small CPU choices inside the tracer and the meta pass, timed against their alternatives.

Backs the figures quoted in the docstrings of ``resviz/measure/stats.py`` (BLAS dot for norms,
``dot(sign, sign)`` for non-zero counts, cache-sized chunks) and ``resviz/measure/fastmeta.py``
(the cost of PyTorch's own meta kernels per call). One activation of resnet50's second stage at
batch 8 and 112x112 input (8x256x28x28 float32, 6.4 MB), after a ReLU so that a third of it or
more is zero. Medians of ``--reps`` runs, in milliseconds.

Run: ``.venv/bin/python bench/cpu_kernels.py [--reps 50]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from resviz.measure.stats import CHUNK


def _ms(fn: Callable[[], object], reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _sign_dot(v: torch.Tensor) -> torch.Tensor:
    s = torch.sign(v)
    return torch.dot(s, s)


def _five(v: torch.Tensor) -> None:
    """The five reductions of a layer's statistics row: sum, norm, min/max, non-zeros."""
    v.sum()
    torch.dot(v, v)
    torch.aminmax(v)
    _sign_dot(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args()
    torch.manual_seed(0)
    v = torch.relu(torch.randn(8, 256, 28, 28)).reshape(-1)
    chunks = list(v.split(CHUNK))
    rows = [
        ("norm: torch.linalg.vector_norm", _ms(lambda: torch.linalg.vector_norm(v), args.reps)),
        ("norm: dot(v, v).sqrt()", _ms(lambda: torch.dot(v, v).sqrt(), args.reps)),
        ("non-zeros: count_nonzero", _ms(lambda: torch.count_nonzero(v), args.reps)),
        ("non-zeros: dot(sign(v), sign(v))", _ms(lambda: _sign_dot(v), args.reps)),
        ("five reductions, whole tensor", _ms(lambda: _five(v), args.reps)),
        ("five reductions, per chunk", _ms(lambda: [_five(c) for c in chunks], args.reps)),
    ]
    meta = torch.empty(1, 256, 56, 56, device="meta")
    weight = torch.empty(256, device="meta")
    kernel = torch.empty(256, 256, 3, 3, device="meta")
    rows += [
        ("meta: batch_norm (training)", _ms(lambda: F.batch_norm(meta, weight, weight, weight, weight, True), 20)),
        ("meta: relu", _ms(lambda: torch.relu(meta), 20)),
        ("meta: add", _ms(lambda: meta + meta, 20)),
        ("meta: conv2d 3x3", _ms(lambda: F.conv2d(meta, kernel, padding=1), 20)),
        ("meta: normal_ of a 3x3 kernel", _ms(lambda: kernel.normal_(), 20)),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {v.numel():,} values")
    for label, ms in rows:
        print(f"{label:40s} {ms:8.3f} ms")


if __name__ == "__main__":
    main()
