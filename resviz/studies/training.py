"""The short training run of a comparison: N SGD steps, the same batches for every model.

Models advance in lockstep (step 1 of every model, then step 2 ...), so an interrupted run still
covers the same steps for all of them. A model whose loss turns NaN or infinite stops there and is
marked; the others go on. Ctrl-C ends the loop cleanly: the steps done so far are kept.

The optimiser is He et al. 2015's (arXiv:1512.03385, Sec. 3.4): SGD with momentum 0.9 and weight
decay 1e-4; only the learning rate is a parameter. Per-block statistics come from
:func:`resviz.measure.monitor.monitor`, which the loop opens around each model when ``every`` is set.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from resviz.measure.monitor import Monitor, monitor
from resviz.records import MonitorSeries, TrainingRun, TrainingStatus
from resviz.studies.data import Batches

Progress = Callable[[int, int, str], None]

OK, NAN, INTERRUPTED = TrainingStatus.OK, TrainingStatus.NAN, TrainingStatus.INTERRUPTED


@dataclass
class _State:
    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    losses: list[float] = field(default_factory=list)
    status: TrainingStatus = OK
    message: str = ""
    seconds: float = 0.0
    mon: Monitor | None = None


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)


def sgd_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One step; returns the loss. NaN is returned before the update so weights stay finite."""
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    value = float(loss.detach())  # one host sync per step, needed to stop a diverging model
    if not math.isfinite(value):
        return value
    loss.backward()
    optimizer.step()
    return value


def train(
    models: Sequence[tuple[str, nn.Module]],
    batches: Batches,
    steps: int,
    lr: float = 0.05,
    device: torch.device | str = "cpu",
    every: int | None = 1,
    progress: Progress | None = None,
) -> tuple[list[TrainingRun], bool]:
    """Train every model for ``steps`` steps on ``batches[1..steps]`` (batch 0 is the init probe).

    Returns one :class:`TrainingRun` per model and whether the run was interrupted. With
    ``every=None`` no statistics are recorded (the plain-training baseline of the benchmark).
    """
    dev = torch.device(device)
    states = [_State(name, m.to(dev).train(), make_optimizer(m, lr)) for name, m in models]
    interrupted = False
    with contextlib.ExitStack() as stack:
        if every is not None:
            for st in states:
                st.mon = stack.enter_context(monitor(st.model, every=every))
        try:
            for step in range(1, steps + 1):
                x, y = batches[step]
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                for st in states:
                    if st.status == OK:
                        _advance(st, x, y, step)
                    if progress is not None:
                        progress(step, steps, st.name)
                if all(st.status != OK for st in states):
                    break
        except KeyboardInterrupt:
            interrupted = True
            for st in states:
                if st.status == OK:
                    st.status = INTERRUPTED
                    st.message = f"interrupted after {len(st.losses)} step(s)"
    runs = [
        TrainingRun(
            st.name, st.status, sum(1 for v in st.losses if math.isfinite(v)), tuple(st.losses),
            round(st.seconds, 4), st.message, _series(st.mon),
        )
        for st in states
    ]
    return runs, interrupted


def _advance(st: _State, x: torch.Tensor, y: torch.Tensor, step: int) -> None:
    start = time.perf_counter()
    value = sgd_step(st.model, st.optimizer, x, y)
    st.seconds += time.perf_counter() - start
    st.losses.append(value)
    if st.mon is not None:
        st.mon.log_loss(value)
    if not math.isfinite(value):
        st.status = NAN
        shown = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        st.message = f"loss became {shown} at step {step}; this model stopped training, the others went on"


def _series(mon: Monitor | None) -> MonitorSeries | None:
    """The monitor's plain record (read after the monitor has detached and copied its numbers)."""
    return mon.series if mon is not None else None
