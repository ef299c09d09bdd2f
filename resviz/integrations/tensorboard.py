"""A monitored run in TensorBoard, written with PyTorch's own ``torch.utils.tensorboard.SummaryWriter``.

Tags (all under ``resviz/``), each written at the step the monitor recorded it:

* per residual block, at every snapshot: ``resviz/<block>/grad_main``, ``grad_skip``, ``grad_total``
  (norms of the gradient at the block input through the main path, the shortcut, and in total),
  ``skip_share`` (grad_skip / (grad_main + grad_skip)), ``main_rms`` and ``skip_rms`` (the two
  operands of the residual addition); a block's second call in one forward is ``<block>.call2``;
* per parameter, at every snapshot: ``resviz/param/<name>/grad_norm`` and ``weight_norm``;
* ``resviz/loss`` at every step ``mon.log_loss`` saw.

A value that was not measured (no backward pass, a plain block's share) is not written. TensorBoard
takes tags of letters, digits, ``_``, ``-``, ``.`` and ``/`` only; other characters in a user's
module names become ``_`` here, as TensorBoard would do with a warning.

Importing this module needs the ``tensorboard`` package (the ``tensorboard`` extra).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from resviz.errors import ResvizError, clip
from resviz.extras import missing
from resviz.records import BlockStats, MonitorSeries

try:
    import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
except ImportError as exc:  # TensorBoard comes with the 'tensorboard' extra
    raise missing(exc, "tensorboard", "TensorBoard logging") from None

from torch.utils.tensorboard import SummaryWriter

PREFIX = "resviz"
"""The first part of every tag, so resviz's charts sit in one section of TensorBoard."""

BLOCK_FIELDS = ("grad_main", "grad_skip", "grad_total", "skip_share", "main_rms", "skip_rms")
"""What is written per block and snapshot: :class:`~resviz.records.BlockStats` fields and properties."""

PARAM_FIELDS = ("grad_norm", "weight_norm")
"""What is written per parameter and snapshot: :class:`~resviz.records.ParamStats` fields."""

_ILLEGAL = re.compile(r"[^-/\w.]")


class Scalar(NamedTuple):
    """One point of a TensorBoard scalar chart."""

    tag: str
    step: int
    value: float


def clean(name: str) -> str:
    """``name`` as a part of a TensorBoard tag: characters TensorBoard refuses become ``_``."""
    return _ILLEGAL.sub("_", name) or "_"


def block_tag(block: BlockStats, field: str) -> str:
    """``resviz/<block>/<field>``; a block's later calls in one forward get ``.call<n>``."""
    name = clean(block.name) + (f".call{block.call}" if block.call > 1 else "")
    return f"{PREFIX}/{name}/{field}"


def scalars(series: MonitorSeries) -> Iterator[Scalar]:
    """Every scalar :func:`write_series` writes, in order: per snapshot its blocks then its
    parameters, then the loss curve. Unmeasured values (None) are left out."""
    for snap in series.snapshots:
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
    for step, loss in zip(series.loss_steps, series.loss_values, strict=True):
        yield Scalar(f"{PREFIX}/loss", step, float(loss))


def write_layer_histograms(series: MonitorSeries, writer: Any) -> None:
    """The place for per-layer histograms (``writer.add_histogram_raw`` per layer and snapshot,
    from :class:`~resviz.records.LayerStats`' fixed-bin ``hist_edges``/``hist_counts``): the
    monitor records no per-layer statistics yet, so there is nothing to write."""


def write_series(series: MonitorSeries, writer: Any | str | os.PathLike[str]) -> None:
    """Write ``series`` to TensorBoard: scalars (:func:`scalars`) and, once the monitor records
    them, per-layer histograms (:func:`write_layer_histograms`).

    ``writer`` is a ``SummaryWriter`` (anything with its ``add_scalar``: Lightning's
    ``TensorBoardLogger.experiment`` is one), flushed but left open; or a log folder, for which a
    writer is made and closed. Writing the same series twice writes its points twice.
    """
    if isinstance(writer, (str, os.PathLike)):
        with SummaryWriter(log_dir=str(Path(writer))) as own:
            write_series(series, own)
        return
    if not callable(getattr(writer, "add_scalar", None)):
        raise ResvizError(f"to_tensorboard needs a SummaryWriter or a log folder, got {clip(type(writer).__name__)}")
    for point in scalars(series):
        writer.add_scalar(point.tag, point.value, point.step)
    write_layer_histograms(series, writer)
    writer.flush()


__all__ = [
    "BLOCK_FIELDS",
    "PARAM_FIELDS",
    "PREFIX",
    "Scalar",
    "block_tag",
    "clean",
    "scalars",
    "write_layer_histograms",
    "write_series",
]
