"""A monitored run as named scalars, for any logging tool (TensorBoard, Lightning's loggers).

Tags (all under ``resviz/``): per residual block and snapshot ``resviz/<block>/grad_main``,
``grad_skip``, ``grad_total``, ``skip_share``, ``main_rms``, ``skip_rms`` (a block's second call in
one forward is ``<block>.call2``); per parameter and snapshot ``resviz/param/<name>/grad_norm`` and
``weight_norm``; ``resviz/loss`` at every step the monitor saw a loss. Characters logging tools
refuse in a tag become ``_``. Needs no optional package.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import NamedTuple

from resviz.records import BlockStats, LayerStats, MonitorSeries, StepStats

PREFIX = "resviz"
"""The first part of every tag, so resviz's charts sit in one section of a logging tool."""

BLOCK_FIELDS = ("grad_main", "grad_skip", "grad_total", "skip_share", "main_rms", "skip_rms")
"""What is written per block and snapshot: :class:`~resviz.records.BlockStats` fields and properties."""

PARAM_FIELDS = ("grad_norm", "weight_norm")
"""What is written per parameter and snapshot: :class:`~resviz.records.ParamStats` fields."""

_ILLEGAL = re.compile(r"[^-/\w.]")


class Scalar(NamedTuple):
    """One point of a scalar chart."""

    tag: str
    step: int
    value: float


def clean(name: str) -> str:
    """``name`` as a part of a tag: characters TensorBoard refuses become ``_``."""
    return _ILLEGAL.sub("_", name) or "_"


def block_tag(block: BlockStats, field: str) -> str:
    """``resviz/<block>/<field>``; a block's later calls in one forward get ``.call<n>``."""
    name = clean(block.name) + (f".call{block.call}" if block.call > 1 else "")
    return f"{PREFIX}/{name}/{field}"


def snapshot_scalars(snap: StepStats) -> Iterator[Scalar]:
    """One snapshot's scalars: its blocks, then its parameters. Unmeasured values (None) are left out."""
    for block in snap.blocks:
        for field in BLOCK_FIELDS:
            value = getattr(block, field)
            if value is not None:
                yield Scalar(block_tag(block, field), snap.step, float(value))
    for param in snap.params:
        for field in PARAM_FIELDS:
            value = getattr(param, field)
            if value is not None:
                yield Scalar(f"{PREFIX}/param/{clean(param.name)}/{field}", snap.step, float(value))


class Histogram(NamedTuple):
    """One layer's output histogram at one snapshot, as ``SummaryWriter.add_histogram_raw`` takes it.

    The counts are resviz's fixed-bin counts over a systematic sample of the output
    (:mod:`resviz.measure.stats`), ``num`` their total; ``sum`` and ``sum_squares`` are scaled from
    the whole output's mean and RMS to that total, and ``min``/``max`` are the whole output's, so the
    mean and spread TensorBoard shows are the layer's own."""

    tag: str
    step: int
    min: float
    max: float
    num: int
    sum: float
    sum_squares: float
    bucket_limits: tuple[float, ...]
    bucket_counts: tuple[int, ...]


def layer_tag(layer: LayerStats) -> str:
    """``resviz/layer/<name>``; a layer's later calls in one forward get ``.call<n>``."""
    return f"{PREFIX}/layer/{clean(layer.name)}" + (f".call{layer.call}" if layer.call > 1 else "")


def histograms(series: MonitorSeries) -> Iterator[Histogram]:
    """Every finite layer histogram of ``series``, per snapshot in forward order (a layer with
    NaN or Inf, or an empty sample, is left out: TensorBoard cannot draw it)."""
    for snap in series.snapshots:
        for lr in snap.layers:
            num = sum(lr.hist_counts)
            if not num or not all(math.isfinite(v) for v in (lr.min, lr.max, lr.mean, lr.rms)):
                continue
            yield Histogram(
                layer_tag(lr), snap.step, lr.min, lr.max, num, lr.mean * num, lr.rms * lr.rms * num,
                tuple(lr.hist_edges[1:]), tuple(lr.hist_counts),
            )


def scalars(series: MonitorSeries) -> Iterator[Scalar]:
    """Every scalar of ``series``, in order: per snapshot its blocks then its parameters
    (:func:`snapshot_scalars`), then the loss curve."""
    for snap in series.snapshots:
        yield from snapshot_scalars(snap)
    for step, loss in zip(series.loss_steps, series.loss_values, strict=True):
        yield Scalar(f"{PREFIX}/loss", step, float(loss))


__all__ = [
    "BLOCK_FIELDS", "PARAM_FIELDS", "PREFIX", "Histogram", "Scalar", "block_tag", "clean", "histograms", "layer_tag",
    "scalars", "snapshot_scalars",
]
