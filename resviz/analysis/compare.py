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

import dataclasses
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from resviz.analysis.data import Batches, DataInfo, load_batches
from resviz.analysis.training import TrainingRun, train
from resviz.errors import ResvizError
from resviz.spec import ResNetSpec
from resviz.tracing.records import Summary, json_safe
from resviz.tracing.trace_records import Trace

Progress = Callable[[int, int, str], None]

DEFAULT_BATCH = 8


@dataclass(frozen=True)
class BlockFlow:
    """Gradient and signal at one block at initialisation (norms over the whole batch)."""

    name: str
    stage: str
    depth: int
    shortcut: str
    grad_main: float
    grad_skip: float
    grad_total: float
    ratio: float | None  # grad_main / grad_skip; None for a plain block (no skip path)
    main_rms: float
    skip_rms: float


@dataclass(frozen=True)
class LayerStd:
    """One point of the Fig. 7 curve: the std of a 3x3 layer's response (after BN when present)."""

    depth: int
    name: str
    stage: str
    std: float


@dataclass(frozen=True)
class StageFlow:
    """One stage's blocks summarised: gradient at its first and last block, shares, response std."""

    name: str
    blocks: int
    grad_first: float
    grad_last: float
    attenuation: float  # grad_first / grad_last inside the stage
    mean_ratio: float | None  # mean of the blocks' main / skip ratios; None without skips
    mean_act_std: float


@dataclass(frozen=True)
class ModelResult:
    """Everything measured for one model; ``trace`` is the full record behind the numbers."""

    name: str
    has_skips: bool
    depth: int
    params: int
    macs: int
    blocks_count: int
    loss_init: float
    grad_first: float
    grad_last: float
    headline: float  # grad_first / grad_last
    blocks: tuple[BlockFlow, ...]
    act_std: tuple[LayerStd, ...]
    stages: tuple[StageFlow, ...]
    spec: dict[str, Any]
    trace: Trace
    summary: Summary = field(repr=False, compare=False)  # the static analysis the diagrams draw
    training: TrainingRun | None = None
    act_std_trained: tuple[LayerStd, ...] = ()

    @property
    def status(self) -> str:
        return self.training.status if self.training else "ok"

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "summary"}
        d["trace"] = self.trace.to_dict()
        d["training"] = self.training.to_dict() if self.training else None
        d["status"] = self.status
        return dict(json_safe(d))


@dataclass(frozen=True)
class Settings:
    """How the run was made: enough to reproduce it."""

    models: tuple[str, ...]
    steps: int
    steps_done: int
    batch: int
    input_shape: tuple[int, int, int, int]
    data: DataInfo
    seed: int
    device: str
    lr: float
    interrupted: bool
    versions: dict[str, str]
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["models"] = list(self.models)
        d["input_shape"] = list(self.input_shape)
        d["data"] = self.data.to_dict()
        return d


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`: one :class:`ModelResult` per model and the run's settings."""

    models: tuple[ModelResult, ...]
    settings: Settings

    def model(self, name: str) -> ModelResult:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "resviz.comparison", "version": 1,
            "settings": self.settings.to_dict(), "models": [m.to_dict() for m in self.models],
        }

    def to_json(self, indent: int | None = None) -> str:
        import json

        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_html(self) -> str:
        from resviz.report import render_html

        return render_html(self)

    def to_markdown(self) -> str:
        from resviz.report import render_markdown

        return render_markdown(self)

    def with_command(self, command: str) -> Comparison:
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, command=command))


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


def _resolve(models: Sequence[str | ResNetSpec]) -> list[ResNetSpec]:
    from resviz.zoo import resolve_spec

    if isinstance(models, (str, ResNetSpec)) or len(models) < 2:
        count = 1 if isinstance(models, (str, ResNetSpec)) else len(models)
        raise ResvizError(f"a comparison needs at least two models, got {count}")
    specs = [resolve_spec(m) for m in models]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ResvizError(f"model {dup[0]} is given more than once; give each model once")
    return specs


def _input_shape(input_size: str | Sequence[int], batch: int | None) -> tuple[int, int, int, int]:
    """``CxHxW`` plus ``batch`` (default 8), or ``NxCxHxW`` whose N is the batch unless given."""
    from resviz.tracing.static import parse_dims, parse_input_size

    if batch is not None and batch < 1:
        raise ResvizError(f"batch size must be at least 1, got {batch}")
    dims = parse_dims(input_size)
    n, c, h, w = parse_input_size(dims)
    if batch is None:
        batch = n if len(dims) == 4 else DEFAULT_BATCH
    return (batch, c, h, w)


def versions() -> dict[str, str]:
    import plotly

    import resviz

    return {
        "resviz": resviz.__version__, "torch": torch.__version__, "plotly": plotly.__version__,
        "python": sys.version.split()[0], "platform": platform.platform(terse=True),
    }


def compare(
    models: Sequence[str | ResNetSpec],
    steps: int = 0,
    batch: int | None = None,
    input_size: str | Sequence[int] = "3x32x32",
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

    Ctrl-C (``KeyboardInterrupt``) stops early and returns what was done, with
    ``settings.interrupted`` set: the training steps done, or, when it comes during the initial
    traces, the models traced so far (no training). Only when no model was traced yet does the
    interrupt propagate.
    """
    from resviz.api import analyze_spec
    from resviz.model.resnet import build_model, resolve_device

    specs = _resolve(models)
    if steps < 0:
        raise ResvizError(f"steps must be 0 or more, got {steps}")
    if not lr > 0 or not math.isfinite(lr):
        raise ResvizError(f"learning rate must be a positive number, got {lr}")
    if every < 1:
        raise ResvizError(f"every must be at least 1, got {every}")
    shape = _input_shape(input_size, batch)
    summaries = [analyze_spec(s, (1, *shape[1:])) for s in specs]  # validates the input size
    for s in specs:
        if s.in_channels != shape[1]:
            raise ResvizError(f"{s.name} takes {s.in_channels} input channel(s); the input has {shape[1]}")
    dev = resolve_device(device)
    batches: Batches = load_batches(
        data, steps + 1, shape[0], shape[1:], seed, max_classes=min(s.num_classes for s in specs),
    )
    total = len(specs) * (steps + 1)
    built: list[tuple[str, nn.Module]] = []
    results: list[dict[str, Any]] = []
    interrupted = False
    try:
        for i, (spec, summ) in enumerate(zip(specs, summaries, strict=True)):
            torch.manual_seed(seed)
            model = build_model(spec, device=dev).train()
            results.append(_init_result(spec, summ, model, _probe(model, batches, dev, seed)))
            built.append((spec.name, model))
            if progress is not None:
                progress(i + 1, total, f"init {spec.name}")
    except KeyboardInterrupt:
        # Like Ctrl-C during training: keep what was measured. With nothing measured there is
        # no report to write, so the interrupt goes on to the caller.
        if not results:
            raise
        interrupted = True
        specs = specs[:len(results)]
    runs: list[TrainingRun | None] = [None] * len(specs)
    if steps > 0 and not interrupted:
        names = [n for n, _ in built]

        def step_progress(step: int, _steps: int, name: str) -> None:
            if progress is not None:
                done = len(specs) * step + names.index(name) + 1
                progress(done, total, f"step {step}/{steps} {name}")

        trained, interrupted = train(built, batches, steps, lr, dev, every, step_progress)
        runs = list(trained)
        interrupted = _after_training(results, built, trained, batches, dev, seed) or interrupted
    settings = Settings(
        tuple(s.name for s in specs), steps, max((r.steps_done for r in runs if r), default=0),
        shape[0], shape, batches.info, seed, str(dev), lr, interrupted, versions(),
    )
    return Comparison(
        tuple(ModelResult(**r, training=run) for r, run in zip(results, runs, strict=True)), settings,
    )


def _probe(model: nn.Module, batches: Batches, dev: torch.device, seed: int) -> Trace:
    """One traced forward/backward on batch 0, the probe batch shared by every model."""
    from resviz.tracing.tracer import trace

    x0, y0 = batches[0]
    return trace(model, inputs=x0.to(dev), targets=y0.to(dev), device=dev, seed=seed)


def _after_training(
    results: list[dict[str, Any]], built: list[tuple[str, nn.Module]], runs: list[TrainingRun],
    batches: Batches, dev: torch.device, seed: int,
) -> bool:
    """Fig. 7 responses of the trained models on the probe batch; True when Ctrl-C cut it short."""
    try:
        for res, (_, net), run in zip(results, built, runs, strict=True):
            if run.status == "ok" and run.steps_done > 0:
                res["act_std_trained"] = response_stds(_probe(net, batches, dev, seed), net)
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
