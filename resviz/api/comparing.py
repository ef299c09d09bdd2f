"""A gradient-flow comparison of several targets, checked before anything is built or trained."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch

from resviz import limits
from resviz.api.preflight import check_need
from resviz.api.sizes import SizeLike, batch_shape
from resviz.api.targets import measuring_device, resolve_spec
from resviz.errors import ResvizError, clip
from resviz.measure.memory import compare_need
from resviz.measure.static import analyze_spec
from resviz.records import Comparison
from resviz.spec import ResNetSpec
from resviz.studies.compare import Progress, run
from resviz.studies.data import data_bytes


def _specs(models: Sequence[str | ResNetSpec]) -> list[ResNetSpec]:
    if isinstance(models, (str, ResNetSpec)) or len(models) < 2:
        count = 1 if isinstance(models, (str, ResNetSpec)) else len(models)
        raise ResvizError(f"a comparison needs at least two models, got {count}")
    specs = [resolve_spec(m) for m in models]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ResvizError(f"model {dup[0]} is given more than once; give each model once")
    return specs


def _check_numbers(steps: int, lr: float, every: int, seed: int) -> None:
    """Steps, learning rate, ``every`` and seed, within :mod:`resviz.limits`, before any work."""
    for value, what in ((steps, "steps"), (every, "every")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ResvizError(f"{what} must be an integer, got {clip(repr(value))}")
    if steps < 0:
        raise ResvizError(f"steps must be 0 or more, got {clip(steps)}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise ResvizError(f"learning rate must be a positive number, got {clip(repr(lr))}")
    if every < 1:
        raise ResvizError(f"every must be at least 1, got {clip(every)}")
    limits.bounded(steps, "steps", limits.MAX_STEPS, limits.STEPS_WHY, low=0)
    limits.bounded(every, "every", limits.MAX_STEPS, limits.STEPS_WHY)
    limits.check_seed(seed)


def compare(
    models: Sequence[str | ResNetSpec],
    steps: int = 0,
    batch: int | None = None,
    input_size: SizeLike = "3x32x32",
    data: str | os.PathLike[str] = "synthetic",
    seed: int = 0,
    device: str | torch.device = "auto",
    lr: float = 0.05,
    every: int = 1,
    progress: Progress | None = None,
) -> Comparison:
    """Measure gradient flow in ``models`` at initialisation and, with ``steps > 0``, during training.

    ``input_size`` is ``CxHxW`` (or ``NxCxHxW``, whose N is the batch unless ``batch`` is given).
    ``data`` is ``synthetic``, ``digits`` or an ImageFolder-style directory. Every model is built
    after ``torch.manual_seed(seed)`` and sees the same batches, so the same call gives the same
    numbers. ``progress(done, total, label)`` is called after each traced model and training step.
    Ctrl-C returns what was done, with ``settings.interrupted`` set
    (:func:`resviz.studies.compare.run`). The largest memory the run needs (every model with its
    gradients and momentum, the largest traced pass, what the data set holds) is checked before anything is
    built (:mod:`resviz.api.preflight`). The result renders with
    :func:`resviz.render.report.render_html` and :func:`~resviz.render.report.render_markdown`.
    """
    specs = _specs(models)
    _check_numbers(steps, lr, every, seed)
    dev = measuring_device(device)
    shape = batch_shape(input_size, batch)
    summaries = [analyze_spec(s, (1, *shape[1:])) for s in specs]  # refuses channels or sizes a model cannot take
    names = ", ".join(s.name for s in specs)
    need = compare_need(summaries, shape[0], steps, data_bytes(data, steps + 1, shape[0], shape[1:]))
    check_need(f"a comparison of {names}", need, dev, shape)  # before building
    return run(specs, summaries, shape, steps, data, seed, dev, lr, every, progress)


__all__ = ["compare"]
