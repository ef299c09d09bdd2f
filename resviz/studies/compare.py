"""Gradient-flow comparison: why skip connections let very deep networks train, measured.

:func:`run` builds every model from the same seed, traces one forward/backward pass at
initialisation on the same batch, then (optionally) trains all of them for N steps on the same
batches. It returns a :class:`~resviz.records.Comparison`: plain data, rendered as HTML, Markdown
or JSON by :mod:`resviz.render.report`. What each number means is documented in
:mod:`resviz.studies.flow`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from resviz.measure.tracer import trace
from resviz.model.resnet import build_model
from resviz.records import (
    Comparison,
    ModelResult,
    Settings,
    Summary,
    Trace,
    TrainingRun,
    TrainingStatus,
)
from resviz.spec import ResNetSpec
from resviz.studies.data import Batches, load_batches
from resviz.studies.environment import versions
from resviz.studies.flow import init_result, response_stds
from resviz.studies.training import train

Progress = Callable[[int, int, str], None]



def run(
    specs: Sequence[ResNetSpec],
    summaries: Sequence[Summary],
    shape: tuple[int, int, int, int],
    steps: int = 0,
    data: str | os.PathLike[str] = "synthetic",
    seed: int = 0,
    device: torch.device | None = None,
    lr: float = 0.05,
    every: int = 1,
    progress: Progress | None = None,
) -> Comparison:
    """Measure gradient flow in validated ``specs`` (``summaries``: their static analyses at one image
    of ``shape``) on batches of ``shape`` at initialisation and,
    with ``steps > 0``, during training (see :func:`resviz.api.compare` for the arguments).

    Every model is built after ``torch.manual_seed(seed)`` and sees the same batches, so the same
    call gives the same numbers. Ctrl-C (``KeyboardInterrupt``) stops early and returns what was
    done, with ``settings.interrupted`` set: the training steps done, or, when it comes during the
    initial traces, the models traced so far (no training). Only when no model was traced yet does
    the interrupt propagate.
    """
    dev = device or torch.device("cpu")
    batches = load_batches(data, steps + 1, shape[0], shape[1:], seed, max_classes=min(s.num_classes for s in specs))
    total = len(specs) * (steps + 1)
    results, built, interrupted = _initial(specs, summaries, batches, dev, seed, total, progress)
    specs = specs[:len(results)]
    runs: list[TrainingRun | None] = [None] * len(specs)
    if steps > 0 and not interrupted:
        trained, interrupted = train(built, batches, steps, lr, dev, every, _step_progress(progress, built, total))
        runs = list(trained)
        interrupted = _after_training(results, built, trained, batches, dev, seed) or interrupted
    settings = Settings(
        tuple(s.name for s in specs), steps, max((r.steps_done for r in runs if r), default=0),
        shape[0], shape, batches.info, seed, str(dev), lr, interrupted, versions(),
    )
    return Comparison(
        tuple(ModelResult(**r, training=run) for r, run in zip(results, runs, strict=True)), settings,
    )


def _initial(
    specs: Sequence[ResNetSpec], summaries: Sequence[Summary], batches: Batches, dev: torch.device, seed: int,
    total: int, progress: Progress | None,
) -> tuple[list[dict[str, Any]], list[tuple[str, nn.Module]], bool]:
    """Build and trace every model at initialisation; on Ctrl-C keep what was measured (with
    nothing measured there is no report to write, so the interrupt goes on to the caller)."""
    built: list[tuple[str, nn.Module]] = []
    results: list[dict[str, Any]] = []
    try:
        for i, (spec, summ) in enumerate(zip(specs, summaries, strict=True)):
            torch.manual_seed(seed)
            model = build_model(spec, device=dev).train()
            results.append(init_result(spec, summ, model, _probe(model, batches, dev, seed, spec.name)))
            built.append((spec.name, model))
            if progress is not None:
                progress(i + 1, total, f"init {spec.name}")
    except KeyboardInterrupt:
        if not results:
            raise
        return results, built, True
    return results, built, False


def _step_progress(
    progress: Progress | None, built: Sequence[tuple[str, nn.Module]], total: int,
) -> Progress:
    names = [n for n, _ in built]

    def step_progress(step: int, steps: int, name: str) -> None:
        if progress is not None:
            progress(len(names) * step + names.index(name) + 1, total, f"step {step}/{steps} {name}")

    return step_progress


def _probe(model: nn.Module, batches: Batches, dev: torch.device, seed: int, label: str) -> Trace:
    """One traced forward/backward on batch 0, the probe batch shared by every model."""
    x0, y0 = batches[0]
    return trace(model, inputs=x0.to(dev), targets=y0.to(dev), seed=seed, label=label)


def _after_training(
    results: list[dict[str, Any]], built: list[tuple[str, nn.Module]], runs: list[TrainingRun],
    batches: Batches, dev: torch.device, seed: int,
) -> bool:
    """Fig. 7 responses of the trained models on the probe batch; True when Ctrl-C cut it short."""
    try:
        for res, (name, net), run in zip(results, built, runs, strict=True):
            if run.status is TrainingStatus.OK and run.steps_done > 0:
                res["act_std_trained"] = response_stds(_probe(net, batches, dev, seed, name), net)
    except KeyboardInterrupt:
        return True
    return False
