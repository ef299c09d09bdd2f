"""Plain records of a traced forward/backward pass and of a monitored training loop.

These are the dynamic counterparts of :mod:`resviz.records.summary`: frozen dataclasses of numbers,
strings and tuples, never a tensor or a module, so a :class:`Trace` can be cached by Streamlit,
written to JSON, read back with :meth:`Trace.from_dict` and compared across runs.

Conventions shared by every consumer (diagrams, dashboard, reports):

* norms are L2 norms over the whole tensor (all samples of the batch together);
* ``grad_*`` fields are ``None`` when no backward pass ran;
* at a block input x, ``grad_main`` and ``grad_skip`` are the norms of the two parts of dL/dx
  that arrive through the main path and through the shortcut; their vector sum is dL/dx, whose norm
  is ``grad_total``. A plain block (no shortcut) has ``grad_skip == 0.0`` and ``skip_rms == 0.0``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from resviz.records.codec import Called, Shape, build, decode_float, json_safe, stamped
from resviz.records.display import NotebookRepr
from resviz.records.enums import Branch, ShortcutKind

TRACE_KIND = "resviz.trace"
SERIES_KIND = "resviz.monitor_series"


def _to_dict(record: Any) -> dict[str, Any]:
    return dict(json_safe(record))


@dataclass(frozen=True)
class LayerStats(Called):
    """Output statistics of one executed leaf module, with its static facts for context.

    ``zero_fraction`` counts exact zeros (dead ReLU units show up here). ``mean``/``std``/``rms``
    are over finite and non-finite values alike, so a single NaN makes them NaN: look at
    ``nan_count``/``inf_count`` first. The histogram has fixed edges (:data:`HIST_EDGES` in
    :mod:`resviz.measure.stats`); values outside the outer edges are counted in the outer bins.
    A module that runs several times in one forward (shared weights) has one row per call,
    numbered by ``call`` (1, 2, ...); its ``params`` are on the first call's row only.
    """

    name: str
    type: str
    output_shape: Shape
    mean: float
    std: float
    min: float
    max: float
    rms: float
    zero_fraction: float
    nan_count: int
    inf_count: int
    hist_edges: tuple[float, ...]
    hist_counts: tuple[int, ...]
    params: int = 0
    macs: int = 0
    stage: str = ""
    block: str = ""
    branch: Branch = Branch.OUTSIDE
    call: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "branch", Branch(self.branch))

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class BlockStats(Called):
    """Signal and gradient at one residual block.

    ``main_rms``/``skip_rms`` are the RMS of the two operands of the residual addition (main branch
    output, shortcut output): their ratio says how much a block changes the signal it passes on
    (Veit et al. 2016 read ResNets as ensembles of shallow paths because this ratio is small).
    A block that runs several times in one forward has one record per call (``call`` 1, 2, ...).
    """

    name: str
    stage: str
    index: int
    shortcut: ShortcutKind
    main_rms: float
    skip_rms: float
    grad_main: float | None
    grad_skip: float | None
    grad_total: float | None
    call: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "shortcut", ShortcutKind(self.shortcut))

    @property
    def rms_ratio(self) -> float:
        """main_rms / skip_rms (inf for a plain block, whose skip carries nothing)."""
        if self.skip_rms == 0.0:
            return math.inf if self.main_rms else math.nan
        return self.main_rms / self.skip_rms

    @property
    def grad_ratio(self) -> float | None:
        """grad_main / grad_skip: how much gradient the main path adds at the block input relative
        to the shortcut; ``None`` without a backward pass or where the shortcut carries none."""
        if self.grad_main is None or not self.grad_skip:
            return None
        return self.grad_main / self.grad_skip

    @property
    def skip_share(self) -> float | None:
        """grad_skip / (grad_main + grad_skip): the share of the gradient the shortcut carries."""
        if self.grad_main is None or self.grad_skip is None:
            return None
        denom = self.grad_main + self.grad_skip
        return self.grad_skip / denom if denom else None

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class ParamStats:
    """One parameter tensor: its gradient norm, its weight norm and ``grad_norm / weight_norm``.

    The ratio approximates the relative update size of plain SGD (lr x ratio), the quantity LARS
    (You et al. 2017) normalises per layer.
    """

    name: str
    grad_norm: float | None
    weight_norm: float
    ratio: float | None

    @classmethod
    def of(cls, name: str, weight_norm: float, grad_norm: float | None) -> ParamStats:
        """The record of two measured norms (no ratio without a gradient or for a zero weight)."""
        ratio = grad_norm / weight_norm if grad_norm is not None and weight_norm else None
        return cls(name=name, grad_norm=grad_norm, weight_norm=weight_norm, ratio=ratio)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class Trace(NotebookRepr):
    """One traced forward (and usually backward) pass of one model on one batch."""

    model: str
    input_shape: Shape
    device: str
    dtype: str
    torch_version: str
    seed: int
    loss: float | None
    layers: tuple[LayerStats, ...]
    blocks: tuple[BlockStats, ...]
    params: tuple[ParamStats, ...]
    notes: tuple[str, ...] = ()

    def block(self, name: str) -> BlockStats:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)

    def layer(self, name: str) -> LayerStats:
        for lr in self.layers:
            if lr.name == name:
                return lr
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return stamped(TRACE_KIND, _to_dict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        return cls(
            model=data["model"],
            input_shape=tuple(data["input_shape"]),
            device=data["device"],
            dtype=data["dtype"],
            torch_version=data["torch_version"],
            seed=int(data["seed"]),
            loss=decode_float(data.get("loss")),
            layers=tuple(build(LayerStats, r) for r in data.get("layers", ())),
            blocks=tuple(build(BlockStats, r) for r in data.get("blocks", ())),
            params=tuple(build(ParamStats, r) for r in data.get("params", ())),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class StepStats:
    """What :func:`resviz.monitor` records at one training step (the k-th forward in train mode).

    ``layers`` holds the output statistics of every leaf module in that step's forward, as a
    trace has them (empty when the monitor was asked for blocks and parameters only); under
    ``torch.distributed`` with global numbers they describe the union of every rank's batch.
    """

    step: int
    loss: float | None
    blocks: tuple[BlockStats, ...]
    params: tuple[ParamStats, ...]
    layers: tuple[LayerStats, ...] = ()

    def layer(self, name: str, call: int = 1) -> LayerStats:
        """The statistics of layer ``name`` (its ``call``-th run in the forward)."""
        for lr in self.layers:
            if lr.name == name and lr.call == call:
                return lr
        raise KeyError(f"no layer {name!r} recorded at step {self.step}")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class MonitorSeries(NotebookRepr):
    """A training run seen through :func:`resviz.monitor`: snapshots every ``every`` steps.

    ``loss_steps``/``loss_values`` hold every loss passed to ``mon.log_loss`` (one per step, not
    only at snapshots), for loss curves. :meth:`matrix` gives block x step grids for heatmaps.
    Under ``torch.distributed``, ``world_size`` and ``backend`` name the process group and
    ``reduce`` says whether the numbers are global (combined over every rank's batch) or this
    rank's own (``local``); ``batches`` holds the global batch of each snapshot.
    """

    model: str
    every: int
    snapshots: tuple[StepStats, ...]
    loss_steps: tuple[int, ...] = ()
    loss_values: tuple[float, ...] = ()
    world_size: int = 1
    backend: str = ""
    reduce: str = "local"
    batches: tuple[int, ...] = ()

    @property
    def steps(self) -> tuple[int, ...]:
        return tuple(s.step for s in self.snapshots)

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.snapshots[0].blocks) if self.snapshots else ()

    def matrix(self, field: str = "grad_skip") -> list[list[float | None]]:
        """``rows[block][snapshot]`` of a :class:`BlockStats` field (``grad_main``, ``main_rms`` ...)."""
        names = {f.name for f in dataclasses.fields(BlockStats)}
        if field not in names:
            raise KeyError(f"unknown BlockStats field {field!r}")
        rows: list[list[float | None]] = [[] for _ in self.block_names]
        for snap in self.snapshots:
            for i, b in enumerate(snap.blocks[: len(rows)]):
                rows[i].append(getattr(b, field))
        return rows

    def to_dict(self) -> dict[str, Any]:
        d = stamped(SERIES_KIND, _to_dict(self))
        d["steps"] = list(self.steps)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitorSeries:
        snaps = tuple(
            StepStats(
                step=int(s["step"]),
                loss=decode_float(s.get("loss")),
                blocks=tuple(build(BlockStats, b) for b in s.get("blocks", ())),
                params=tuple(build(ParamStats, p) for p in s.get("params", ())),
                layers=tuple(build(LayerStats, r) for r in s.get("layers", ())),
            )
            for s in data.get("snapshots", ())
        )
        return cls(
            model=data["model"],
            every=int(data["every"]),
            snapshots=snaps,
            loss_steps=tuple(int(v) for v in data.get("loss_steps", ())),
            loss_values=tuple(float(v) for v in decode_float(data.get("loss_values", []))),
            world_size=int(data.get("world_size", 1)),
            backend=str(data.get("backend", "")),
            reduce=str(data.get("reduce", "local")),
            batches=tuple(int(v) for v in data.get("batches", ())),
        )


__all__ = ["BlockStats", "LayerStats", "MonitorSeries", "ParamStats", "StepStats", "Trace"]
