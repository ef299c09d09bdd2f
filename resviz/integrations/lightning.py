"""resviz in a PyTorch Lightning run: a callback that monitors the model and logs through the
Trainer's own loggers.

``Trainer(callbacks=[ResvizCallback(every_n_steps=50)])`` attaches :func:`resviz.monitor` to the
LightningModule (or one of its submodules, ``module="net"``) when fitting starts, records every
``every_n_steps``-th training step (the gradient at every residual block through the main path,
the shortcut and in total, the addends' RMS, every parameter's gradient and weight norm) and logs
each new snapshot through every logger the Trainer has (TensorBoard, CSV, W&B ...), under the tags of
:mod:`resviz.integrations.scalars`. Under DDP the numbers are global (combined over every rank's
batch, :mod:`resviz.measure.distributed`) unless ``reduce="local"``; every rank takes part in
combining them, and Lightning's loggers write on rank 0 only. ``callback.series`` is the whole run.

Works with ``lightning.pytorch`` and the older ``pytorch_lightning`` package (the ``lightning``
extra installs the first).
"""

from __future__ import annotations

import contextlib
from typing import Any

from resviz import api
from resviz.errors import ResvizError
from resviz.extras import missing
from resviz.integrations.scalars import PREFIX, snapshot_scalars
from resviz.records import MonitorSeries

try:
    import lightning.pytorch as pl
except ImportError as first:
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError:
        raise missing(first, "lightning", "the Lightning callback") from None


class ResvizCallback(pl.Callback):  # type: ignore[misc]
    """Monitor a LightningModule every ``every_n_steps`` training steps and log what it records."""

    def __init__(self, every_n_steps: int = 50, reduce: str | api.Reduce | None = None, module: str | None = None):
        super().__init__()
        self.every_n_steps = every_n_steps
        self.reduce = reduce
        self.module = module
        self._monitor: api.Monitor | None = None
        self._logged = 0

    @property
    def series(self) -> MonitorSeries:
        """Everything recorded so far (under DDP every rank must read it at the same point)."""
        if self._monitor is None:
            raise ResvizError("the callback has not monitored a run yet: pass it to Trainer(callbacks=[...])")
        return self._monitor.series

    def _target(self, pl_module: Any) -> Any:
        target = pl_module
        for part in (self.module or "").split("."):
            if part:
                if not hasattr(target, part):
                    raise ResvizError(f"{type(pl_module).__name__} has no submodule {self.module!r} to monitor")
                target = getattr(target, part)
        return target

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._monitor = api.Monitor(self._target(pl_module), self.every_n_steps, self.reduce)
        self._monitor.attach()
        self._logged = 0

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        mon = self._monitor
        if mon is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            mon.log_loss(loss)
        if mon.recorded > self._logged:  # a new snapshot: combine (all ranks) and log
            self._log(trainer, mon.series)

    def _log(self, trainer: Any, series: MonitorSeries) -> None:
        for snap in series.snapshots[self._logged:]:
            metrics = {s.tag: s.value for s in snapshot_scalars(snap)}
            losses = dict(zip(series.loss_steps, series.loss_values, strict=True))
            if snap.step in losses:
                metrics[f"{PREFIX}/loss"] = losses[snap.step]
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=snap.step)
        self._logged = len(series.snapshots)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self._monitor is not None:
            self._monitor.detach()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """The hooks come off; numbers the failed run cannot combine across ranks are dropped, so
        the run's own error is the one reported."""
        if self._monitor is not None:
            with contextlib.suppress(ResvizError):
                self._monitor.detach()


__all__ = ["ResvizCallback"]
