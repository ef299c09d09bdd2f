"""A monitored run as named scalars, for any logging tool (TensorBoard, Lightning's loggers).

Tags (all under ``resviz/``): per residual block and snapshot ``resviz/<block>/grad_main``,
``grad_skip``, ``grad_total``, ``skip_share``, ``main_rms``, ``skip_rms`` (a block's second call in
one forward is ``<block>.call2``); per parameter and snapshot ``resviz/param/<name>/grad_norm`` and
``weight_norm``; ``resviz/loss`` at every step the monitor saw a loss. Characters logging tools
refuse in a tag become ``_``. Needs no optional package.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from resviz.records import BlockStats, MonitorSeries, StepStats

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


def scalars(series: MonitorSeries) -> Iterator[Scalar]:
    """Every scalar of ``series``, in order: per snapshot its blocks then its parameters
    (:func:`snapshot_scalars`), then the loss curve."""
    for snap in series.snapshots:
        yield from snapshot_scalars(snap)
    for step, loss in zip(series.loss_steps, series.loss_values, strict=True):
        yield Scalar(f"{PREFIX}/loss", step, float(loss))


__all__ = ["BLOCK_FIELDS", "PARAM_FIELDS", "PREFIX", "Scalar", "block_tag", "clean", "scalars", "snapshot_scalars"]
