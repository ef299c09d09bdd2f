"""``resviz.monitor``: the api's monitor, yielding an object that also writes to logging tools.

The statistics come from :class:`resviz.api.Monitor` unchanged; this subclass only adds methods
that hand its :class:`~resviz.records.MonitorSeries` to a writer, so the measuring layers never
import a logging tool. Importing this module costs no more than ``resviz.api``.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from resviz import api
from resviz.api import Reduce


class Monitor(api.Monitor):
    """What ``with resviz.monitor(model) as mon`` yields: ``steps``, ``series``, ``log_loss``,
    ``to_dict`` (:class:`resviz.api.Monitor`) and ``to_tensorboard``."""

    def to_tensorboard(self, writer: Any | str | os.PathLike[str], all_ranks: bool = False) -> None:
        """Write the series so far to TensorBoard (:func:`resviz.integrations.tensorboard.write_series`):
        ``writer`` is a ``torch.utils.tensorboard.SummaryWriter`` or a log folder. Needs the
        ``tensorboard`` extra; without it, a one-line :class:`~resviz.errors.ResvizError` says so.
        Under ``torch.distributed`` every rank calls it and only rank 0 writes, unless ``all_ranks``."""
        series = self.series  # on every rank: under torch.distributed reading it combines the ranks' numbers
        if not api.writes_files(all_ranks):  # then rank 0 writes, unless every rank is asked to
            return
        # Imported here: TensorBoard is an optional extra that training loops without it never load.
        from resviz.integrations.tensorboard import write_series

        write_series(series, writer)


def monitor(
    model: nn.Module, every: int = 10, reduce: str | Reduce | None = None, layers: bool = True,
) -> Monitor:
    """:func:`resviz.api.monitor` (same arguments: a test keeps the two signatures equal), yielding
    a :class:`Monitor` that can also write to logging tools::

        with resviz.monitor(model, every=10) as mon:
            ...                        # your training loop, mon.log_loss(loss)
        mon.to_tensorboard(writer)     # per-block and per-parameter scalars, the loss, layer histograms
    """
    return Monitor(model, every, reduce, layers)


__all__ = ["Monitor", "monitor"]
