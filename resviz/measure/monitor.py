"""Watch block, layer and parameter statistics during the user's own training loop.

``with resviz.monitor(model, every=10) as mon:`` counts forward passes made in training mode;
on every ``every``-th one (steps 0, k, 2k ...) it attaches the branch hooks of
:class:`~resviz.measure.tracer.BranchCapture` for that forward and its backward and the layer
hooks of :class:`~resviz.measure.layers.LayerCapture` for that forward (the statistics a trace
has, NaN and Inf counted in the same reductions, as no second pass can run), then takes
parameter and gradient norms once ``.grad`` is accumulated, before the user's ``optimizer.step()``
and ``zero_grad()``, which see nothing different. That moment is caught by an autograd engine
callback at the end of the backward pass, a private PyTorch internal
(:func:`~resviz.measure.fastpaths.engine_callback`); with the fast paths off, or where PyTorch
lacks it, the public fallback takes weight norms when the backward pass reaches the model's
output and each gradient's norm in a post-accumulate-grad hook, for the same numbers. Other steps
pay for one counting pre-hook only (overhead in bench/RESULTS.md).

Compiled models (``torch.compile``): hooks go on the original module (``_orig_mod``) and each
recorded step runs eagerly under the compiler stance ``force_eager``
(:mod:`resviz.measure.compiled`), so its numbers equal eager ones; other steps run the compiled
graph, which holds no resviz hook. The stance is read when a compiled function is entered, so it
must be set before that, and PyTorch refuses to change it inside a compiled call. Given the
compiled wrapper, a pre-hook on it, outside the graph, counts the step and sets the stance for the
step it starts (the original module's pre-hook, traced into the graph, then reduces to nothing).
When the module runs inside compiled code without that (compiled after attaching, by
``model.compile()``, or inside a compiled training step), the original module's pre-hook reduces
to one call the graph leaves out (``torch.compiler.disable``: a graph break before the model's
graph, run as Python every step), which counts the step and sets the stance one step ahead: from
the start of the step before a recorded one to the end of the recorded forward. Other compiled
functions called in that window (a compiled optimizer step, say) run eagerly too, once per
``every`` steps. The stance is on from attaching to the end of step 0. A recorded step that still
arrives inside compiled code is counted but not recorded: hooks would not run there.

Numbers stay on the device as 0-d tensors until :attr:`Monitor.series` is read or the block
exits; then everything is copied to the host in one transfer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Self

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from resviz.errors import ResvizError
from resviz.measure import fastpaths
from resviz.measure.compiled import EagerSwitch, compiled_code_probe, is_compiled, original, outside_graphs
from resviz.measure.distributed import Combine, GlobalTransfer, Reduce, local_part, resolve_reduce
from resviz.measure.graph import quietly
from resviz.measure.layers import LayerCapture
from resviz.measure.outputs import find_logits
from resviz.measure.ownership import Use, claim, release
from resviz.measure.state import disable_inplace, enable_inplace
from resviz.measure.stats import HIST_BINS, ROW, norms
from resviz.measure.tracer import BlockProbe, BranchCapture, block_record
from resviz.measure.transfer import HostTransfer
from resviz.records import BlockStats, LayerStats, MonitorSeries, ParamStats, StepStats


@dataclass
class _Pending:
    """One recorded step, still on the device."""

    step: int
    probes: dict[str, BlockProbe]
    layers: LayerCapture | None = None
    batch: int = 0
    names: list[str] = field(default_factory=list)
    weights: list[Tensor] = field(default_factory=list)
    grad_names: list[str] = field(default_factory=list)
    grads: list[Tensor] = field(default_factory=list)
    kinds: dict[str, Combine] = field(default_factory=dict)
    """How each parameter's norms combine across ranks (sharded parameters as slices)."""
    done: bool = False
    before: dict[str, Tensor] | None = None
    """Fallback path only: gradient norms of the parameters that had a ``.grad`` when the backward
    pass began (those it does not reach end it unchanged)."""
    accumulated: dict[str, Tensor] = field(default_factory=dict)
    """Fallback path only: gradient norm of each parameter right after the backward accumulated it."""

    def finish_grads(self) -> None:
        """Fallback path: the gradient norms at the end of the backward pass, in parameter order."""
        if self.before is None:
            return
        got = {**self.before, **self.accumulated}
        self.grad_names = [n for n in self.names if n in got]
        self.grads = [got[n] for n in self.grad_names]


class Monitor:
    """The object ``resviz.monitor`` yields: ``steps``, ``series``, ``log_loss``, ``to_dict``."""

    def __init__(
        self, model: nn.Module, every: int = 10, reduce: str | Reduce | None = None, layers: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ResvizError(f"monitor needs an nn.Module, got {type(model).__name__}")
        if int(every) < 1:
            raise ResvizError(f"every must be at least 1, got {every}")
        self.reduce, self.group = resolve_reduce(reduce)
        self._flat = self.reduce is Reduce.GLOBAL and (flat_sharded(model) or flat_sharded(original(model)))
        """FSDP's older wrapper shards a flat parameter: each rank holds a disjoint piece of some
        parameters (flattened, maybe empty), so every norm combines as a norm of slices."""
        model = unwrap_parallel(model)
        self.wrapper = model
        """What the user passed and calls: the model, or its ``torch.compile`` wrapper."""
        self.model = unwrap_parallel(original(model))  # torch.compile(DDP(model)) too
        """The user's own module: hooks, parameter names and the label are read from it."""
        self.every = int(every)
        self.layers = bool(layers)
        """Whether recorded steps also take every leaf module's output statistics."""
        spec = getattr(self.model, "spec", None)
        self.label = getattr(spec, "name", type(self.model).__name__)
        self._ahead = not is_compiled(model)
        """Whether the stance is set one step ahead: the module itself may be compiled, and its
        pre-hook then runs inside compiled code. Turned on when the pre-hook is seen there."""
        self._eager = EagerSwitch()
        self._from_graph: Callable[[nn.Module], None] | None = None
        self._in_compiled: Callable[[], bool] = lambda: False
        self._counted = False
        """Set by the compiled wrapper's pre-hook for the call it starts, so the original
        module's pre-hook, which runs next, does not count that call again."""
        self._count = 0
        self._root: list[RemovableHandle] = []
        self._step_handles: list[RemovableHandle] = []
        self._grad_handles: list[RemovableHandle] = []  # fallback path: post-accumulate-grad hooks
        self._capture = BranchCapture(self.model)
        self._pending: list[_Pending] = []
        self._snapshots: list[StepStats] = []
        self._losses: list[tuple[int, Tensor | float]] = []
        self._loss_host: list[tuple[int, float]] = []
        self._inplace: list[nn.Module] = []
        self._held: list[nn.Module] = []
        self._batches: list[int] = []

    # -- public -----------------------------------------------------------------------------------
    @property
    def recorded(self) -> int:
        """Snapshots taken so far, read or not: cheap (no transfer, and no exchange between ranks),
        for a caller that acts when a new one arrives."""
        return len(self._snapshots) + len(self._pending)

    @property
    def steps(self) -> tuple[int, ...]:
        self._materialize()
        return tuple(s.step for s in self._snapshots)

    @property
    def series(self) -> MonitorSeries:
        self._materialize()
        return MonitorSeries(
            model=self.label, every=self.every, snapshots=tuple(self._snapshots),
            loss_steps=tuple(s for s, _ in self._loss_host),
            loss_values=tuple(v for _, v in self._loss_host),
            world_size=self.group.world if self.group else 1,
            backend=self.group.backend if self.group else "",
            reduce=self.reduce.value, batches=tuple(self._batches),
        )

    def log_loss(self, value: Tensor | float) -> None:
        """Record the loss of the latest training step (kept on the device until read)."""
        step = max(self._count - 1, 0)
        self._losses.append((step, value.detach().float().reshape(()) if isinstance(value, Tensor) else float(value)))

    def to_dict(self) -> dict[str, Any]:
        return self.series.to_dict()

    # -- lifecycle ----------------------------------------------------------------------------------
    def attach(self) -> None:
        self._held = claim(self.wrapper, Use.MONITOR, self.label)  # the wrapper's modules include the original's
        self._from_graph = outside_graphs(self._in_graph)
        self._in_compiled = compiled_code_probe()
        self._root.append(self.model.register_forward_pre_hook(self._on_call))
        if self.wrapper is not self.model:
            self._root.append(self.wrapper.register_forward_pre_hook(self._on_wrapper_call))
        self._eager.set(True)  # step 0 is recorded, wherever the model runs

    def __enter__(self) -> Self:
        self.attach()
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def detach(self) -> None:
        self._eager.set(False)
        self._capture.close()
        for h in (*self._root, *self._step_handles, *self._grad_handles):
            h.remove()
        self._root.clear()
        self._step_handles.clear()
        self._grad_handles.clear()
        enable_inplace(self._inplace)
        self._inplace.clear()
        release(self._held)
        self._held = []
        self._materialize()

    # -- hooks ---------------------------------------------------------------------------------------
    def _on_wrapper_call(self, module: nn.Module, _args: tuple[Any, ...]) -> None:
        """Pre-hook of the compiled wrapper: it runs before the compiled code is entered, so it
        counts the step and sets the stance for this very step."""
        if torch.compiler.is_compiling() or module is not self.wrapper or self._in_compiled():
            return  # the wrapper called from compiled code (the original's pre-hook counts); a deep copy
        self._counted = True
        self._on_forward(in_graph=False, args=_args)

    def _on_call(self, module: nn.Module, _args: tuple[Any, ...]) -> None:
        """The counting pre-hook of the original module. Traced by dynamo when the module runs
        inside compiled code: there it is one call the graph leaves out, made as Python every
        step, or nothing at all when the compiled wrapper's pre-hook has counted the call (only
        plain attributes are read before that call: dynamo tracks the modules itself)."""
        if self._counted:
            self._counted = False
            return
        if torch.compiler.is_compiling() or self._in_compiled():  # traced, or run as Python by dynamo
            if self._from_graph is not None:
                self._from_graph(module)
            return
        if module is self.model:  # not a deep copy of it, whose hook dictionary holds this same hook
            self._on_forward(in_graph=False, args=_args)

    def _in_graph(self, module: nn.Module) -> None:
        """The pre-hook's work when the model runs inside compiled code, which only a stance set
        before that code was entered can make eager: from now on it is set a step ahead."""
        if module is self.model:
            self._ahead = True
            self._on_forward(in_graph=True)

    def _on_forward(self, in_graph: bool, args: tuple[Any, ...] = ()) -> None:
        if not self.model.training:
            if self._grad_handles:  # fallback path, backward begun: this forward is not the step's
                self._drop_step_hooks()
            return
        self._drop_step_hooks()
        for h in self._grad_handles:
            h.remove()
        self._grad_handles.clear()
        step = self._count
        self._count += 1
        if step % self.every or in_graph:  # in compiled code, hooks would not run: not recorded
            self._eager.set(self._ahead and self._recorded(step + 1))
            return
        self._eager.set(True)
        self._inplace = disable_inplace(self.model)  # for this forward only: a graph compiled
        # for the other steps sees the flags as the user set them, and is never recompiled for them
        x = args[0] if args and isinstance(args[0], Tensor) else None
        self._capture.attach(self._step_handles, x, running=True)
        layers = LayerCapture(self.model, self._capture.blocks, count_nonfinite=True) if self.layers else None
        if layers is not None:
            layers.layout = self._capture.layout
            layers.defer_when_safe(self._capture)
            layers.attach(self._step_handles)
        pending = _Pending(step=step, probes=self._capture.probes, layers=layers)
        self._step_handles.append(self.model.register_forward_hook(self._end_forward(pending), always_call=True))
        self._pending.append(pending)
        queue = fastpaths.engine_callback()

        @quietly
        def on_output(_m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            x = args[0] if args else None
            pending.batch = int(x.shape[0]) if isinstance(x, Tensor) and x.dim() else 1
            t = find_logits(out)
            if t is None or not t.requires_grad:
                return
            if queue is not None:
                # queued from inside a callback, it runs after every callback the backward pass queued,
                # DDP's averaging of the gradients among them
                t.register_hook(lambda _g: queue(lambda: queue(lambda: self._end_backward(pending))))
            else:
                t.register_hook(lambda _g: self._begin_backward(pending))

        self._step_handles.append(self.model.register_forward_hook(on_output))

    def _recorded(self, step: int) -> bool:
        return step % self.every == 0

    def _end_forward(self, pending: _Pending) -> Callable[..., None]:
        """Forward hook of a recorded step (also when its forward raises): the last layers reduced
        (no activation is held past the forward), in-place flags back on, and compiled code may
        run again, unless the next step is recorded too and the stance is set ahead."""
        step = pending.step

        @quietly
        def hook(_m: nn.Module, _a: tuple[Any, ...], _out: Any) -> None:
            if pending.layers is not None:
                pending.layers.buffer.flush()
            enable_inplace(self._inplace)
            self._inplace = []
            self._eager.set(self._ahead and self._recorded(step + 1))

        return hook

    def _drop_step_hooks(self) -> None:
        self._capture.close()
        for h in self._step_handles:
            h.remove()
        self._step_handles.clear()

    def _weights(self, pending: _Pending) -> list[tuple[str, nn.Parameter]]:
        """Every parameter by name, its weight norm taken into ``pending`` (weights do not change
        during a backward pass)."""
        named = list(self.model.named_parameters())
        pending.names = [n for n, _ in named]
        parts = [(p.detach(), Combine.NORM) if self._flat else local_part(p.detach()) for _, p in named]
        pending.kinds = {n: kind for (n, _), (_, kind) in zip(named, parts, strict=True)}
        pending.weights = norms([t for t, _ in parts])
        return named

    def _end_backward(self, pending: _Pending) -> None:
        """Runs once autograd has accumulated every ``.grad`` of this step."""
        if pending.done:
            return
        named = self._weights(pending)
        if self._flat:  # a rank whose piece of a parameter is empty has no .grad for it: norm 0
            with_grad = [(n, p.grad if p.grad is not None else p.detach()[:0]) for n, p in named if p.requires_grad]
        else:
            with_grad = [(n, p.grad) for n, p in named if p.grad is not None]
        pending.grad_names = [n for n, _ in with_grad]
        pending.grads = norms([local_part(g)[0] for _, g in with_grad])
        pending.done = True
        self._drop_step_hooks()

    def _begin_backward(self, pending: _Pending) -> None:
        """Public fallback for :meth:`_end_backward`: runs when the first backward pass of this
        step reaches the model's output. Weights do not change during a backward pass, so their
        norms are taken now; each gradient's norm is taken by a hook right after autograd
        accumulates it, and :meth:`_Pending.finish_grads` assembles them when the step is read.
        The hooks stay until the next forward (an evaluation forward removes the branch hooks,
        a training forward all of them), as the end of the backward pass is not observable."""
        if pending.done:
            return
        named = self._weights(pending)
        stale = [(n, p.grad) for n, p in named if p.grad is not None]
        pending.before = dict(zip((n for n, _ in stale), norms([local_part(g)[0] for _, g in stale]), strict=True))
        pending.done = True
        for name, p in named:
            if p.requires_grad:
                self._grad_handles.append(p.register_post_accumulate_grad_hook(_accumulated(pending, name)))

    # -- host side -----------------------------------------------------------------------------------
    def _materialize(self) -> None:
        """Copy every pending number to the host in one transfer and build the snapshots."""
        if not self._pending and not self._losses:
            return
        for p in self._pending:
            p.finish_grads()
        out, put = self._transfer()
        plan = [(p, _plan_step(p, put, self.reduce is Reduce.GLOBAL) | _plan_layers(p, out)) for p in self._pending]
        world = self.group.world if self.reduce is Reduce.GLOBAL and self.group else 1
        loss_idx = [(s, put(_as_tensor(v) / world, Combine.SUM)) for s, v in self._losses]  # the mean over ranks
        try:
            host = out.fetch()  # the one device-to-host transfer (after the one exchange between ranks)
        except ResvizError:
            self._pending.clear()  # said once: not tried again at every read
            self._losses.clear()
            raise
        for p, refs in plan:
            self._snapshots.append(_build_step(p, refs, host, out))
        self._batches.extend(int(host[refs["batch"]]) for _, refs in plan)
        for s, v in loss_idx:
            self._loss_host.append((s, host[v]))
        self._pending.clear()
        self._losses.clear()
        losses = dict(self._loss_host)
        self._snapshots = [
            replace(s, loss=losses.get(s.step, s.loss)) for s in self._snapshots
        ]


    def _transfer(self) -> tuple[HostTransfer, Callable[[Tensor, Combine], int]]:
        """The host transfer of this monitor: combined across ranks when global."""
        if self.reduce is Reduce.GLOBAL:
            combined = GlobalTransfer()
            return combined, combined.put
        local = HostTransfer()
        return local, lambda t, _kind: local.put(t)


def _as_tensor(v: Tensor | float) -> Tensor:
    return v if isinstance(v, Tensor) else torch.tensor(float(v))


def flat_sharded(model: nn.Module) -> bool:
    """Whether ``model`` is the older ``FullyShardedDataParallel`` wrapper with a sharding
    strategy (read by name, so that torch.distributed.fsdp is not imported for everyone)."""
    if type(model).__name__ != "FullyShardedDataParallel" or not type(model).__module__.startswith("torch."):
        return False
    strategy = getattr(getattr(model, "sharding_strategy", None), "name", "NO_SHARD")
    if "HYBRID" in strategy:  # shards replicated across groups of ranks: norms would count each piece twice
        raise ResvizError(f"the monitor does not combine {strategy} shards yet: use FULL_SHARD, SHARD_GRAD_OP or "
                          f"reduce='local'")
    return strategy != "NO_SHARD"


def unwrap_parallel(model: nn.Module) -> nn.Module:
    """The user's module inside a ``DistributedDataParallel``, ``DataParallel`` or the older
    ``FullyShardedDataParallel`` wrapper (names and blocks are read from it; the wrapper calls it
    on every forward). Modules wrapped inside it keep the wrapper's ``_fsdp_wrapped_module`` in
    their names."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    if isinstance(model, wrappers) or type(model).__name__ == "FullyShardedDataParallel":
        return model.module  # type: ignore[return-value]
    return model


def _accumulated(pending: _Pending, name: str) -> Callable[[Tensor], None]:
    def hook(p: Tensor) -> None:
        if name not in pending.accumulated and p.grad is not None:  # the first backward pass only
            pending.accumulated[name] = norms([local_part(p.grad.detach())[0]])[0]

    return hook


def _plan_step(p: _Pending, put: Callable[[Tensor, Combine], int], scaled: bool) -> dict[str, Any]:
    """Slots for one step's numbers. Global numbers (``scaled``): a block's gradient norms combine
    over the ranks and are divided by their number, as DDP averages the ranks' gradients (the
    convention of :mod:`resviz.measure.distributed`); the addends' sizes and the batches add up."""
    blocks = {}
    for name, probe in p.probes.items():
        addends = (("main_rms", probe.main), ("skip_rms", probe.skip))
        slots = {k: put(v, Combine.NORM) for k, v in addends if v is not None}
        slots |= {k: put(v, Combine.NORM) for k, v in probe.grads.items()}
        if slots:
            slots["main_numel"] = put(torch.tensor(float(probe.main_numel)), Combine.SUM)
            slots["skip_numel"] = put(torch.tensor(float(probe.skip_numel)), Combine.SUM)
        blocks[name] = slots
    return {
        "blocks": blocks,
        "batch": put(torch.tensor(float(p.batch)), Combine.SUM),
        "ranks": put(torch.tensor(1.0 if scaled else 0.0), Combine.SUM),
        "weights": [put(t, p.kinds.get(n, Combine.SAME)) for n, t in zip(p.names, p.weights, strict=True)],
        "grads": {n: put(t, p.kinds.get(n, Combine.SAME)) for n, t in zip(p.grad_names, p.grads, strict=True)},
    }


LAYER_KINDS = (
    Combine.SUM, Combine.NORM, Combine.MIN, Combine.MAX, Combine.SUM, Combine.SUM, Combine.SUM,
    *[Combine.SUM] * HIST_BINS,
)
"""How each column of a layer row (:mod:`resviz.measure.stats`) combines across ranks: sums, the
non-zero, NaN, Inf and histogram counts add up, the norm is a norm of slices, the extrema are the
ranks' extrema. Mean, RMS and std follow exactly from the global sums and element count."""


def _plan_layers(p: _Pending, out: HostTransfer) -> dict[str, Any]:
    """Blocks of the transfer for one step's layer rows (and, combined across ranks, their global
    element counts)."""
    buffer = p.layers.buffer if p.layers is not None else None
    rows = buffer.device_rows() if buffer is not None else None
    if buffer is None or rows is None:
        return {}
    if isinstance(out, GlobalTransfer):
        numels = torch.tensor(buffer.numels, dtype=torch.float64, device=rows.device)
        return {"layers": out.put_rows(rows, list(LAYER_KINDS)), "numels": out.put_block(numels, Combine.SUM)}
    return {"layers": out.put_block(rows)}


def _layer_records(
    p: _Pending, refs: dict[str, Any], host: list[float], out: HostTransfer, batch: int,
) -> tuple[LayerStats, ...]:
    if p.layers is None or "layers" not in refs:
        return ()
    n = len(p.layers.buffer.names)
    start = out.offset(refs["layers"])
    numels = None
    if "numels" in refs:
        at = out.offset(refs["numels"])
        numels = host[at:at + n]
    found = p.layers.records(host[start:start + n * ROW], numels, (p.batch, batch))
    return tuple(lr for lr, _ in found)


def _build_step(p: _Pending, refs: dict[str, Any], host: list[float], out: HostTransfer) -> StepStats:
    blocks: list[BlockStats] = []
    ranks = max(host[refs["ranks"]], 1.0)
    for name, probe in p.probes.items():
        values = {k: host[i] for k, i in refs["blocks"][name].items()}
        if values:
            sizes = replace(probe, main_numel=int(values.pop("main_numel")), skip_numel=int(values.pop("skip_numel")))
            grads = {k: values[k] / ranks for k in probe.grads if k in values}
            blocks.append(block_record(sizes, {**values, **grads}, len(blocks), p.done))
    grads = {n: host[i] for n, i in refs["grads"].items()}
    params = tuple(ParamStats.of(n, host[i], grads.get(n)) for n, i in zip(p.names, refs["weights"], strict=True))
    layers = _layer_records(p, refs, host, out, int(host[refs["batch"]]))
    return StepStats(step=p.step, loss=None, blocks=tuple(blocks), params=params, layers=layers)


def monitor(
    model: nn.Module, every: int = 10, reduce: str | Reduce | None = None, layers: bool = True,
) -> Monitor:
    """Record block, layer and parameter statistics every ``every`` training steps of your own loop.

    Example::

        with resviz.monitor(model, every=10) as mon:
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(); loss.backward(); opt.step()
                mon.log_loss(loss)
        series = mon.series   # MonitorSeries: mon.steps, series.matrix("grad_skip") ...

    ``model`` may be compiled (``torch.compile(model)``) or be compiled inside the block: the
    recorded steps run eagerly and equal eager numbers, the others keep the compiled graph.
    All hooks are removed, in-place flags and the compiler stance restored on exit, also when the
    loop raises.

    Under ``torch.distributed`` (a ``DistributedDataParallel`` model, or the module inside it) the
    numbers are global by default (``reduce="global"``): every rank gets what one process would
    measure on the union of the ranks' batches (with equal local batches; else those of the mean of
    the ranks' losses, which DDP optimises),
    when BatchNorm is synchronised or in eval mode (:mod:`resviz.measure.distributed`); parameter
    gradients are read after DDP has averaged them. ``reduce="local"`` keeps each rank's own
    numbers. Every rank must then read the series (or leave the block) at the same point.
    Layer statistics combine exactly too: sums, counts and histograms add up, norms combine as
    norms of slices, extrema as extrema, and mean, std and RMS follow from the global sums.

    ``layers=False`` records blocks and parameters only (a recorded step then costs less).
    """
    return Monitor(model, every, reduce, layers)  # a context manager: attached on entry, detached on exit


__all__ = ["Monitor", "monitor"]
