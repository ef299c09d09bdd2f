"""A monitored run in TensorBoard, written with PyTorch's own ``torch.utils.tensorboard.SummaryWriter``.

Tags (all under ``resviz/``), each written at the step the monitor recorded it:

* per residual block, at every snapshot: ``resviz/<block>/grad_main``, ``grad_skip``, ``grad_total``
  (norms of the gradient at the block input through the main path, the shortcut, and in total),
  ``skip_share`` (grad_skip / (grad_main + grad_skip)), ``main_rms`` and ``skip_rms`` (the two
  operands of the residual addition); a block's second call in one forward is ``<block>.call2``;
* per parameter, at every snapshot: ``resviz/param/<name>/grad_norm`` and ``weight_norm``;
* ``resviz/loss`` at every step ``mon.log_loss`` saw;
* per layer, at every snapshot: the histogram of its output, ``resviz/layer/<name>``
  (:func:`~resviz.integrations.scalars.histograms`).

A value that was not measured (no backward pass, a plain block's share) is not written. TensorBoard
takes tags of letters, digits, ``_``, ``-``, ``.`` and ``/`` only; other characters in a user's
module names become ``_`` here, as TensorBoard would do with a warning.

Importing this module needs the ``tensorboard`` package (the ``tensorboard`` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from resviz.errors import ResvizError, clip
from resviz.extras import missing
from resviz.integrations.scalars import histograms, scalars
from resviz.records import MonitorSeries

try:
    import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
except ImportError as exc:  # TensorBoard comes with the 'tensorboard' extra
    raise missing(exc, "tensorboard", "TensorBoard logging") from None

from torch.utils.tensorboard import SummaryWriter


def write_layer_histograms(series: MonitorSeries, writer: Any) -> None:
    """Every layer's output histogram at every snapshot, with ``writer.add_histogram_raw``
    (left out by a writer without it: a logger that takes scalars only)."""
    add = getattr(writer, "add_histogram_raw", None)
    if not callable(add):
        return
    for h in histograms(series):
        add(h.tag, h.min, h.max, h.num, h.sum, h.sum_squares, list(h.bucket_limits), list(h.bucket_counts),
            global_step=h.step)


def write_series(series: MonitorSeries, writer: Any | str | os.PathLike[str]) -> None:
    """Write ``series`` to TensorBoard: scalars (:func:`scalars`) and per-layer histograms
    (:func:`write_layer_histograms`).

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


__all__ = ["write_layer_histograms", "write_series"]
