"""The short training run of a comparison: N SGD steps, the same batches for every model.

Models advance in lockstep (step 1 of every model, then step 2 ...), so an interrupted run still
covers the same steps for all of them. A model whose loss turns NaN or infinite stops there and is
marked; the others go on. Ctrl-C ends the loop cleanly: the steps done so far are kept.

The optimiser is He et al. 2015's (arXiv:1512.03385, Sec. 3.4): SGD with momentum 0.9 and weight
decay 1e-4; the learning rate follows a :class:`Schedule` (a constant rate, or the paper's short
warm-up at a tenth of the rate, Sec. 4.2). Per-block statistics come from
:func:`resviz.measure.monitor.monitor`, which the loop opens around each model when ``every`` is set.

With held-out images, every model is evaluated (eval mode, no gradient, every held-out image)
before the first step, every ``eval_every`` steps and after the last step; the training error of
each step is read from the logits of its own forward pass, so it costs no extra forward.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from resviz.measure.monitor import Monitor, monitor
from resviz.measure.outputs import find_logits, logits
from resviz.records import HeldOut, MonitorSeries, TrainingRun, TrainingStatus
from resviz.studies.data import Batch, Batches

Progress = Callable[[int, int, str], None]

OK, NAN, INTERRUPTED = TrainingStatus.OK, TrainingStatus.NAN, TrainingStatus.INTERRUPTED

#: The rate divided by this is the warm-up rate: He et al. 2015 (Sec. 4.2) warm ResNet-110 up at
#: 0.01 before training at 0.1.
WARMUP_DIVISOR = 10


@dataclass(frozen=True)
class Schedule:
    """The learning rate of each step: ``warmup_lr`` for steps 1 to ``warmup_steps``, then ``lr``.

    He et al. 2015 (arXiv:1512.03385, Sec. 4.2) train ResNet-110 at 0.01 until the training error
    falls below 80 % (about 400 iterations), then at 0.1; a fixed number of warm-up steps stands in
    for that test here. Without warm-up steps the rate is ``lr`` throughout.
    """

    lr: float
    warmup_steps: int = 0
    warmup_lr: float | None = None

    def at(self, step: int) -> float:
        """The rate of training step ``step`` (1 for the first)."""
        if step <= self.warmup_steps:
            return self.lr / WARMUP_DIVISOR if self.warmup_lr is None else self.warmup_lr
        return self.lr


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
    logits: torch.Tensor | None = None  # the latest training forward's output (a forward hook sets it)
    wrong: list[torch.Tensor] = field(default_factory=list)  # per step, on the device until the end
    eval_steps: list[int] = field(default_factory=list)
    eval_values: list[tuple[float, float]] = field(default_factory=list)


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)


def sgd_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One step; returns the loss. NaN is returned before the update so weights stay finite."""
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(logits(model(x), type(model).__name__), y)
    value = float(loss.detach())  # one host sync per step, needed to stop a diverging model
    if not math.isfinite(value):
        return value
    loss.backward()
    optimizer.step()
    return value


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 512) -> tuple[float, float]:
    """Mean cross-entropy and error (misclassified fraction) of ``model`` on every image of ``x``,
    in eval mode (BatchNorm uses its running statistics and leaves them alone) and without
    gradients, in chunks of ``chunk`` images; the model's training flags are restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        loss = torch.zeros((), device=x.device)
        wrong = torch.zeros((), device=x.device, dtype=torch.long)
        for lo in range(0, len(y), chunk):
            out = logits(model(x[lo:lo + chunk]), type(model).__name__)
            loss += F.cross_entropy(out.float(), y[lo:lo + chunk], reduction="sum")
            wrong += (out.argmax(dim=1) != y[lo:lo + chunk]).sum()
        values = torch.stack([loss, wrong.to(loss.dtype)]).tolist()  # one transfer
    finally:
        for m, flag in flags:
            m.training = flag
    return values[0] / len(y), values[1] / len(y)


def train(
    models: Sequence[tuple[str, nn.Module]],
    batches: Batches,
    steps: int,
    lr: float | Schedule = 0.05,
    device: torch.device | str = "cpu",
    every: int | None = 1,
    progress: Progress | None = None,
    eval_every: int | None = None,
) -> tuple[list[TrainingRun], bool]:
    """Train every model for ``steps`` steps on ``batches[1..steps]`` (batch 0 is the init probe).

    Returns one :class:`TrainingRun` per model and whether the run was interrupted. With
    ``every=None`` no statistics are recorded (the plain-training baseline of the benchmark).
    ``lr`` is a constant rate or a :class:`Schedule`. When ``batches`` has held-out images, each
    model is evaluated on them at step 0, every ``eval_every`` steps (``None``: at the end only)
    and after its last step, unless the run was interrupted.
    """
    dev = torch.device(device)
    schedule = lr if isinstance(lr, Schedule) else Schedule(float(lr))
    states = [_State(name, m.to(dev).train(), make_optimizer(m, schedule.at(1))) for name, m in models]
    held = _held_out(batches.held_out, dev)
    interrupted = False
    with contextlib.ExitStack() as stack:
        for st in states:
            stack.enter_context(_keep_logits(st))
        if every is not None:
            for st in states:
                st.mon = stack.enter_context(monitor(st.model, every=every))
        try:
            _evaluate_all(states, held, 0)
            for step in range(1, steps + 1):
                x, y = batches[step]
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                for st in states:
                    if st.status == OK:
                        _set_lr(st.optimizer, schedule.at(step))
                        _advance(st, x, y, step)
                    if progress is not None:
                        progress(step, steps, st.name)
                if all(st.status != OK for st in states):
                    break
                if eval_every and step % eval_every == 0 and step < steps:
                    _evaluate_all(states, held, step)
            _evaluate_all(states, held, None)
        except KeyboardInterrupt:
            interrupted = True
            for st in states:
                if st.status == OK:
                    st.status = INTERRUPTED
                    st.message = f"interrupted after {len(st.losses)} step(s)"
    return [_run(st, held is not None) for st in states], interrupted


def _held_out(held: Batch | None, dev: torch.device) -> Batch | None:
    return (held[0].to(dev), held[1].to(dev)) if held is not None else None


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _evaluate_all(states: Sequence[_State], held: Batch | None, step: int | None) -> None:
    """Evaluate on the held-out images: at ``step`` the models still training; at the end
    (``step=None``) every model after its last step, unless that step was already evaluated."""
    if held is None:
        return
    for st in states:
        done = len(st.losses)
        if step is None and (not st.eval_steps or st.eval_steps[-1] != done):
            st.eval_steps.append(done)
            st.eval_values.append(evaluate(st.model, *held))
        elif step is not None and st.status == OK:
            st.eval_steps.append(step)
            st.eval_values.append(evaluate(st.model, *held))


@contextlib.contextmanager
def _keep_logits(st: _State) -> Iterator[None]:
    """Keep each training forward's output on ``st`` (detached) for the step's training error."""

    def hook(module: nn.Module, _args: tuple[object, ...], out: object) -> None:
        found = find_logits(out) if module.training else None
        if found is not None:
            st.logits = found.detach()

    handle = st.model.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
        st.logits = None


def _run(st: _State, evaluated: bool) -> TrainingRun:
    errors = tuple(torch.stack(st.wrong).tolist()) if st.wrong else ()  # one transfer per model
    held = None
    if evaluated:
        held = HeldOut(tuple(st.eval_steps), tuple(v[0] for v in st.eval_values),
                       tuple(v[1] for v in st.eval_values))
    return TrainingRun(
        st.name, st.status, sum(1 for v in st.losses if math.isfinite(v)), tuple(st.losses),
        round(st.seconds, 4), st.message, _series(st.mon), errors, held,
    )


def _advance(st: _State, x: torch.Tensor, y: torch.Tensor, step: int) -> None:
    start = time.perf_counter()
    st.logits = None
    value = sgd_step(st.model, st.optimizer, x, y)
    st.seconds += time.perf_counter() - start
    st.losses.append(value)
    logits = st.logits
    st.wrong.append(
        (logits.argmax(dim=1) != y).float().mean() if logits is not None else torch.tensor(math.nan, device=y.device)
    )
    if st.mon is not None:
        st.mon.log_loss(value)
    if not math.isfinite(value):
        st.status = NAN
        shown = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        st.message = f"loss became {shown} at step {step}; this model stopped training, the others went on"


def _series(mon: Monitor | None) -> MonitorSeries | None:
    """The monitor's plain record (read after the monitor has detached and copied its numbers)."""
    return mon.series if mon is not None else None
