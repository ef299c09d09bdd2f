"""The op graph of one forward pass, recorded from what actually runs.

:func:`record_graph` runs a model once under a ``TorchFunctionMode`` and writes down every tensor
operation the model's Python code performs (``conv2d``, ``batch_norm``, ``+``, ``+=``, ``view``,
``matmul`` ...): its kind, the operations that produced its tensor inputs, the innermost module
that was running, and the shape of its output. Operations that PyTorch runs *inside* another one
(``F.relu`` calling ``torch.relu``) are not seen separately: the mode is off while an operation
runs. Parameters and buffers read by an operation become ``PARAM`` nodes named after the state
dict; tensors the model creates from nothing (``torch.empty``, ``torch.rand``) ``CONST`` nodes.

This is the raw material of :mod:`resviz.measure.structure`, which finds residual additions in
it; it knows nothing about blocks itself.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from resviz.measure.state import cuda_indices, saved

_LOCAL = threading.local()
"""Per thread (torch-function modes are per thread too): ``quiet``, the nesting depth of :func:`quiet`."""


def quiet_depth() -> int:
    return getattr(_LOCAL, "quiet", 0)


@contextmanager
def quiet() -> Iterator[None]:
    """Operations run inside are not recorded: resviz's own hooks reduce tensors during the
    forward they measure, and those reductions are not the model's."""
    _LOCAL.quiet = quiet_depth() + 1
    try:
        yield
    finally:
        _LOCAL.quiet = quiet_depth() - 1


def quietly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run under :func:`quiet` (for hooks)."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with quiet():
            return fn(*args, **kwargs)

    return run


class OpKind(StrEnum):
    """What an operation does, as far as residual structure is concerned."""

    INPUT = "input"
    PARAM = "param"
    CONST = "const"
    CONV = "conv"
    CONV1D = "conv1d"
    LINEAR = "linear"
    MATMUL = "matmul"
    NORM = "norm"
    POOL = "pool"
    ACT = "act"
    GATE = "gate"
    ADD = "add"
    MUL = "mul"
    PAD = "pad"
    VIEW = "view"
    UPSAMPLE = "upsample"
    CAT = "cat"
    DROPOUT = "dropout"
    RANDOM = "random"
    OTHER = "other"


_KINDS: dict[OpKind, tuple[str, ...]] = {
    OpKind.CONV: ("conv2d", "conv3d", "_conv_forward"),
    OpKind.CONV1D: ("conv1d",),
    OpKind.LINEAR: ("linear", "addmm"),
    OpKind.MATMUL: ("matmul", "__matmul__", "__rmatmul__", "bmm", "mm", "einsum", "baddbmm",
                    "scaled_dot_product_attention"),
    OpKind.NORM: ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "local_response_norm"),
    OpKind.POOL: ("adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d", "max_pool2d", "avg_pool1d",
                  "max_pool1d", "adaptive_avg_pool1d", "max_pool2d_with_indices", "adaptive_max_pool2d_with_indices",
                  "lp_pool2d"),
    OpKind.ACT: ("relu", "relu_", "gelu", "silu", "mish", "relu6", "leaky_relu", "elu", "selu", "celu", "hardswish",
                 "tanh", "softplus", "glu", "prelu", "hardtanh", "softmax", "log_softmax", "clamp", "clamp_min"),
    OpKind.GATE: ("sigmoid", "sigmoid_", "hardsigmoid"),
    OpKind.ADD: ("add", "__add__", "__radd__", "__iadd__", "add_"),
    OpKind.MUL: ("mul", "__mul__", "__rmul__", "__imul__", "mul_", "div", "__truediv__", "div_", "__itruediv__"),
    OpKind.PAD: ("pad",),
    OpKind.VIEW: ("view", "view_as", "reshape", "permute", "transpose", "flatten", "contiguous", "__getitem__",
                  "squeeze", "unsqueeze", "expand", "expand_as", "chunk", "split", "unbind", "narrow", "select",
                  "movedim", "unflatten", "to", "type_as", "float", "clone", "detach", "t", "mT"),
    OpKind.UPSAMPLE: ("interpolate", "upsample", "conv_transpose2d", "conv_transpose1d", "pixel_shuffle",
                      "upsample_nearest2d", "upsample_bilinear2d"),
    OpKind.CAT: ("cat", "stack", "concat", "concatenate"),
    OpKind.DROPOUT: ("dropout", "dropout2d", "feature_alpha_dropout", "alpha_dropout"),
    OpKind.RANDOM: ("bernoulli", "bernoulli_", "rand", "rand_like", "randn", "empty", "new_empty", "uniform_",
                    "floor_", "floor"),
}
_BY_NAME = {name: kind for kind, names in _KINDS.items() for name in names}
CASTS = frozenset({"to", "float", "half", "bfloat16", "double", "type_as", "type", "contiguous"})
"""Views that only change a tensor's dtype, device or layout (see :meth:`Recorder.__torch_function__`)."""


def op_kind(func: Callable[..., Any]) -> OpKind:
    name = getattr(func, "__name__", "") or ""
    if name == "mean" or name == "amax":
        return OpKind.POOL  # a global mean over spatial dimensions (SE's squeeze) reads as a pool
    return _BY_NAME.get(name, OpKind.OTHER)


@dataclass
class Node:
    """One recorded operation."""

    id: int
    kind: OpKind
    name: str
    """The function's name (``conv2d``, ``__iadd__``), or the parameter's state-dict name."""
    inputs: tuple[int, ...]
    module: str
    """Qualified name of the innermost module running when the operation ran ("" at the root)."""
    shape: tuple[int, ...] = ()
    inplace: bool = False


@dataclass
class Graph:
    """Every recorded operation in execution order (ids are positions), and the modules' calls."""

    nodes: list[Node] = field(default_factory=list)
    entered: dict[str, list[int]] = field(default_factory=dict)
    """For each module name, the node count when each of its calls began."""

    def ancestors(self, node: int) -> set[int]:
        """``node`` and every node it depends on."""
        seen = {node}
        todo = [node]
        while todo:
            for i in self.nodes[todo.pop()].inputs:
                if i not in seen:
                    seen.add(i)
                    todo.append(i)
        return seen


class Recorder(TorchFunctionMode):
    """The mode that records a :class:`Graph`; :meth:`before` and :meth:`after` let a subclass act
    on chosen operations of a later, identical forward pass."""

    def __init__(self, graph: Graph, params: dict[int, str]) -> None:
        super().__init__()
        self.graph = graph
        self.params = params
        self.producer: dict[int, tuple[int, weakref.ref[Tensor]]] = {}
        """Node of each live tensor by id, with a weak reference that tells a reused id apart."""
        self.stack: list[str] = []
        self.hooks = 0
        """Depth of module hooks running now, when a subclass counts them (their operations are not
        the model's)."""

    def start(self, x: Tensor) -> None:
        """Record the model's input as node 0."""
        self.add(OpKind.INPUT, "input", (), x)
        self.after(0, x)

    def node_of(self, t: Tensor) -> int | None:
        """The node that produced the live tensor ``t``, if recorded."""
        entry = self.producer.get(id(t))
        return entry[0] if entry is not None and entry[1]() is t else None

    def _set(self, t: Tensor, node: int) -> None:
        self.producer[id(t)] = (node, weakref.ref(t))

    def source(self, t: Tensor) -> int:
        node = self.node_of(t)
        if node is None:
            name = self.params.get(id(t))
            kind = OpKind.PARAM if name is not None else OpKind.CONST
            node = self.add(kind, name or "tensor", (), t)
        return node

    def add(self, kind: OpKind, name: str, inputs: tuple[int, ...], out: Tensor | None, inplace: bool = False) -> int:
        node = len(self.graph.nodes)
        shape = tuple(out.shape) if out is not None else ()
        self.graph.nodes.append(Node(node, kind, name, inputs, self.stack[-1] if self.stack else "", shape, inplace))
        if out is not None:
            self._set(out, node)
        return node

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if quiet_depth() or self.hooks:
            return func(*args, **kwargs)
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)]
        inputs = tuple(dict.fromkeys(self.source(t) for t in ins))  # read before an in-place op runs
        node = len(self.graph.nodes)  # the id this operation gets if it is recorded
        args, kwargs = self.before(node, args, kwargs, ins)
        out = func(*args, **kwargs)
        flat_out = [t for t in tree_flatten(out)[0] if isinstance(t, Tensor)]
        if not flat_out:
            return out
        kind = op_kind(func)
        name = getattr(func, "__name__", "op")
        if kind is OpKind.VIEW and len(flat_out) == 1 and ins and (
                flat_out[0] is ins[0] or (name in CASTS and flat_out[0].shape == ins[0].shape)):
            # returns its input itself (``contiguous()`` of a contiguous x), or casts it: a cast makes a
            # new tensor or not depending on the dtype and device (meta, autocast), so it never takes a
            # number and its result stands for its input
            self._set(flat_out[0], inputs[0])
            return out
        inplace = any(o is t for o in flat_out for t in ins)
        self.add(kind, getattr(func, "__name__", "op"), inputs, flat_out[0], inplace)
        for t in flat_out[1:]:
            self._set(t, node)
        self.after(node, flat_out[0])
        return out

    def before(
        self, node: int, args: tuple[Any, ...], kwargs: dict[str, Any], ins: list[Tensor],
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Called before operation ``node`` runs, with its tensor inputs: the arguments it runs with."""
        return args, kwargs

    def after(self, node: int, out: Tensor) -> None:
        """Called once operation ``node`` has produced ``out``."""


@contextmanager
def _module_stack(model: nn.Module, rec: Recorder) -> Iterator[None]:
    handles = []
    for name, m in model.named_modules():
        def pre(_m: nn.Module, _a: Any, name: str = name) -> None:
            rec.stack.append(name)
            rec.graph.entered.setdefault(name, []).append(len(rec.graph.nodes))

        def post(_m: nn.Module, _a: Any, _o: Any) -> None:
            rec.stack.pop()

        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post, always_call=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def meta_state(model: nn.Module) -> dict[str, Tensor]:
    """Meta stand-ins for every parameter and buffer, so the real ones are never touched. A tensor
    held under several names (tied weights) gets one stand-in, as ``functional_call`` requires."""
    state: dict[str, Tensor] = {}
    made: dict[int, Tensor] = {}
    named = (*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False))
    for name, t in named:
        if id(t) not in made:
            made[id(t)] = torch.empty(t.shape, dtype=t.dtype, device="meta")
        state[name] = made[id(t)]
    return state


@contextmanager
def without_hooks(model: nn.Module) -> Iterator[None]:
    """The modules' forward hooks set aside while resviz runs the model for its own purposes
    (discovery, counting, reading the logits' width): the user's hooks, and resviz's monitor, must
    not see a forward that is not theirs. Hooks registered inside are dropped on exit."""
    saved = [(m, m._forward_pre_hooks, m._forward_hooks) for m in model.modules()]
    for m, _, _ in saved:
        m._forward_pre_hooks, m._forward_hooks = OrderedDict(), OrderedDict()
    try:
        yield
    finally:
        for m, pre, post in saved:
            m._forward_pre_hooks, m._forward_hooks = pre, post


@contextmanager
def held_real(model: nn.Module, evaluate: bool = True) -> Iterator[None]:
    """A real forward of resviz's own, for a model that cannot run on the meta device: without
    gradients, the global random state forked (dropout draws leave it alone), and in eval mode
    unless ``evaluate`` is false (discovery keeps the model's own mode, since a train-mode forward
    runs other operations, BatchNorm's counter among them). After it the model is as it was
    (:class:`~resviz.measure.state.Saved`: modes, buffers by object and value, parameters and
    submodules). The model's hooks run, as they do in the meta pass it replaces: they may be part
    of what it computes; discovery sets them aside itself."""
    with saved(model), torch.no_grad(), torch.random.fork_rng(devices=cuda_indices(model)):
        if evaluate:
            model.eval()
        yield


def needs_real(exc: BaseException) -> bool:
    """Whether ``exc`` says a forward cannot run on the meta device because it reads tensor values
    (``.item()``, ``float(t)``, ``.numpy()``, data-dependent shapes): such a model runs for real instead."""
    return isinstance(exc, (NotImplementedError, RuntimeError, TypeError)) and says_meta(str(exc))


def says_meta(text: str) -> bool:
    """Whether an error's text blames the meta device (a value read from a tensor that has none)."""
    lower = text.lower()
    return "meta" in lower or "data-dependent" in lower


def record_graph(model: nn.Module, x: Tensor, state: dict[str, Tensor] | None = None) -> Graph:
    """Run ``model(x)`` once and return its op graph. With ``state`` (stand-ins for the model's
    parameters and buffers by state-dict name, e.g. on the meta device) the model runs through
    ``torch.func.functional_call`` and its own tensors are never touched."""
    graph = Graph()
    tensors = state if state is not None else dict(
        (*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)))
    params = {id(t): name for name, t in tensors.items()}
    rec = Recorder(graph, params)
    rec.start(x)
    quiet_before, _LOCAL.quiet = quiet_depth(), 0  # discovery may start from inside a quiet hook
    try:
        with _module_stack(model, rec), rec:
            if state is not None:
                torch.func.functional_call(model, state, (x,))
            else:
                model(x)
    finally:
        _LOCAL.quiet = quiet_before
    return graph


__all__ = [
    "CASTS",
    "Graph",
    "Node",
    "OpKind",
    "Recorder",
    "held_real",
    "meta_state",
    "needs_real",
    "op_kind",
    "quiet",
    "quiet_depth",
    "quietly",
    "record_graph",
    "without_hooks",
]
