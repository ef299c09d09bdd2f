"""Gradient-flow comparison: why skip connections let very deep networks train, measured.

:func:`compare` builds every model from the same seed, traces one forward/backward pass at
initialisation on the same batch, then (optionally) trains all of them for N steps on the same
batches. It returns a :class:`Comparison`: plain data, renderable as HTML, Markdown or JSON.

What is measured, and where the idea comes from:

* **headline**: gradient norm at the first block's input divided by that at the last block's input.
  He et al. 2015 (arXiv:1512.03385, Sec. 4.1) argue that the degradation of deep plain nets is an
  optimisation difficulty; He et al. 2016 (arXiv:1603.05027, Eqs. 4-5) show that with identity
  shortcuts dL/dx_l = dL/dx_L (1 + d/dx_l sum F), so the gradient at a shallow unit keeps a direct
  copy of the deep one. Without shortcuts the gradient is a product of per-layer Jacobians, which in
  batch-normalised plain nets grows with depth going backward (Yang et al. 2019, arXiv:1902.08129).
* **per block**: norms of the gradient arriving at the block input through the main path and through
  the shortcut, and their ratio main/skip (as the gradient-flow diagram labels it; none for a plain
  block). Below 1 the shortcut carries more of the gradient than the residual branch.
* **activation std against depth**: responses of each 3x3 layer after its BatchNorm, before the
  nonlinearity or addition, as in He et al. 2015, Fig. 7. Where no BN directly follows a 3x3 layer
  (pre-activation blocks) the convolution's own output is used. At initialisation a train-mode BN
  output has std 1 by construction; the paper's curves are of trained nets, so after training the
  same probe batch is traced again (``act_std_trained``), where the BN scales have moved.
* **per stage**: the same numbers summarised over the blocks of each stage (Table 1 names).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch
from torch import nn

from resviz.measure.static import analyze_spec
from resviz.measure.tracer import trace
from resviz.model.resnet import build_model
from resviz.records import (
    BlockFlow,
    Comparison,
    LayerStd,
    ModelResult,
    Settings,
    StageFlow,
    Summary,
    Trace,
    TrainingRun,
    TrainingStatus,
)
from resviz.spec import ResNetSpec
from resviz.studies.data import Batches, load_batches
from resviz.studies.training import train

Progress = Callable[[int, int, str], None]



def _ratio(num: float | None, den: float | None) -> float:
    if num is None or den is None:
        return math.nan
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def block_flows(trace: Trace) -> tuple[BlockFlow, ...]:
    return tuple(
        BlockFlow(
            b.name, b.stage, i + 1, b.shortcut, _f(b.grad_main), _f(b.grad_skip), _f(b.grad_total),
            b.grad_ratio, b.main_rms, b.skip_rms,
        )
        for i, b in enumerate(trace.blocks)
    )


def _f(v: float | None) -> float:
    return math.nan if v is None else float(v)


def response_stds(trace: Trace, model: nn.Module) -> tuple[LayerStd, ...]:
    """He et al. 2015, Fig. 7: std of each 3x3 layer's response, after BN where BN follows it."""
    modules = dict(model.named_modules())
    layers = trace.layers
    points: list[LayerStd] = []
    for i, layer in enumerate(layers):
        mod = modules.get(layer.name)
        if not isinstance(mod, nn.Conv2d) or tuple(mod.kernel_size) != (3, 3):
            continue
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        chosen = layer
        if nxt is not None and "norm" in nxt.type.lower() and nxt.block == layer.block:
            chosen = nxt
        points.append(LayerStd(len(points) + 1, chosen.name, layer.stage, chosen.std))
    return tuple(points)


def stage_flows(blocks: Sequence[BlockFlow], stds: Sequence[LayerStd]) -> tuple[StageFlow, ...]:
    out: list[StageFlow] = []
    for stage in dict.fromkeys(b.stage for b in blocks):
        bs = [b for b in blocks if b.stage == stage]
        ratios = [b.ratio for b in bs if b.ratio is not None and math.isfinite(b.ratio)]
        act = [s.std for s in stds if s.stage == stage]
        out.append(StageFlow(
            stage, len(bs), bs[0].grad_total, bs[-1].grad_total,
            _ratio(bs[0].grad_total, bs[-1].grad_total),
            statistics.fmean(ratios) if ratios else None,
            statistics.fmean(act) if act else math.nan,
        ))
    return tuple(out)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def versions() -> dict[str, str]:
    """The versions that produced a report, for its settings section."""
    return {
        "resviz": _version("resviz"), "torch": torch.__version__, "plotly": _version("plotly"),
        "python": sys.version.split()[0], "platform": platform.platform(terse=True),
    }


def run(
    specs: Sequence[ResNetSpec],
    shape: tuple[int, int, int, int],
    steps: int = 0,
    data: str | os.PathLike[str] = "synthetic",
    seed: int = 0,
    device: torch.device | None = None,
    lr: float = 0.05,
    every: int = 1,
    progress: Progress | None = None,
) -> Comparison:
    """Measure gradient flow in validated ``specs`` on batches of ``shape`` at initialisation and,
    with ``steps > 0``, during training (see :func:`resviz.api.compare` for the arguments).

    Every model is built after ``torch.manual_seed(seed)`` and sees the same batches, so the same
    call gives the same numbers. Ctrl-C (``KeyboardInterrupt``) stops early and returns what was
    done, with ``settings.interrupted`` set: the training steps done, or, when it comes during the
    initial traces, the models traced so far (no training). Only when no model was traced yet does
    the interrupt propagate.
    """
    dev = device or torch.device("cpu")
    summaries = [analyze_spec(s, (1, *shape[1:])) for s in specs]
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
            results.append(_init_result(spec, summ, model, _probe(model, batches, dev, seed, spec.name)))
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


def _init_result(spec: ResNetSpec, summ: Summary, model: nn.Module, tr: Trace) -> dict[str, Any]:
    blocks = block_flows(tr)
    stds = response_stds(tr, model)
    first = blocks[0].grad_total if blocks else math.nan
    last = blocks[-1].grad_total if blocks else math.nan
    return {
        "name": spec.name, "has_skips": spec.has_skips, "depth": spec.depth, "params": summ.total_params,
        "macs": summ.total_macs, "blocks_count": len(blocks), "loss_init": _f(tr.loss),
        "grad_first": first, "grad_last": last, "headline": _ratio(first, last),
        "blocks": blocks, "act_std": stds, "stages": stage_flows(blocks, stds),
        "spec": spec.to_dict(),
        "trace": tr, "summary": summ,
    }
