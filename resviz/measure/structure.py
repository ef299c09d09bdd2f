"""Residual structure found from the computation: the one place that knows what a block is.

A residual block computes ``out = F(x) + S(x)`` (He et al. 2015, arXiv:1512.03385, Eq. 1-2).
Most additions in a network are not that: BatchNorm's ``num_batches_tracked += 1``, a bias, a
position embedding, a U-Net's long skip, an Inception-style sum of branches. Here an addition is
*residual* when, in the op graph of one forward pass (:mod:`resviz.measure.graph`):

1. its two operands are floating-point tensors of one shape, and both depend on a common tensor;
   ``x`` is the latest such tensor (the fork point, where the two branches part);
2. one operand, the *skip*, is a short path from ``x``: nothing (identity), views, padding and
   strided slicing (He et al.'s option A), pooling, and at most one convolution or linear layer
   with at most one normalisation (a projection, or ResNet-D's pooled projection,
   He et al. 2019, arXiv:1812.01187);
3. the other, the *main* branch, is longer and holds at least one convolution, linear layer or
   matrix product, and no upsampling (which marks a U-Net or FPN long skip, Ronneberger et al.
   2015, Lin et al. 2017: not a residual block).

What acts on the main branch is a separate property (:class:`Modifier`): layer-scale (a learned
per-channel factor, Touvron et al. 2021, arXiv:2103.17239), drop-path (a random per-sample mask,
Huang et al. 2016, arXiv:1603.09382), squeeze-excitation (Hu et al. 2018, arXiv:1709.01507) and
ECA (Wang et al. 2020, arXiv:1910.03151) gates.

A block is named after the module whose forward performs the addition (a parameter-free module
that only joins the two operands, like resviz's ``ResidualAdd``, gives way to its parent), so
resviz and torchvision models keep ``layer1.0``; a module performing several residual additions
(a ViT block: attention, then MLP) has them as ``blocks.0:1``, ``blocks.0:2``. Stages are runs of
blocks at one resolution.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import torch
from torch import nn

from resviz.measure.graph import Graph, Node, OpKind, held_real, meta_state, needs_real, record_graph, without_hooks
from resviz.measure.state import device_of
from resviz.model.fastmeta import FastMeta
from resviz.records import ROOT_BLOCK, Branch, ShortcutKind

ROOT = ROOT_BLOCK
"""The name of a residual addition the model's own ``forward`` performs (its module has no name)."""
MAX_SKIP_WEIGHTED = 1
"""Convolutions or linear layers a shortcut may hold (a projection has one)."""
MAX_SKIP_NORMS = 1

_SKIP_FREE = {OpKind.VIEW, OpKind.PAD, OpKind.DROPOUT, OpKind.CONST, OpKind.PARAM}
_SKIP_OK = _SKIP_FREE | {OpKind.POOL, OpKind.CONV, OpKind.LINEAR, OpKind.NORM, OpKind.MUL}
_WEIGHTED = {OpKind.CONV, OpKind.LINEAR, OpKind.MATMUL, OpKind.CONV1D}


class Modifier(StrEnum):
    """What acts on a residual block's main branch besides its layers."""

    LAYER_SCALE = "layer-scale"
    DROP_PATH = "drop-path"
    SE = "se"
    ECA = "eca"


class NotResidual(StrEnum):
    """Why an addition of two tensors that depend on a common one is not a residual block."""

    LONG_SKIP = "long skip (U-Net/FPN-style: the longer branch upsamples)"
    BRANCH_SUM = "sum of branches (neither operand is a short path)"
    SHAPES = "operands of different shapes (broadcast)"


@dataclass(frozen=True)
class ResidualSite:
    """One residual addition found in a model's computation."""

    name: str
    """``module`` when each call of the module performs one residual addition, ``module:k`` for
    the k-th of several (a ViT block: ``blocks.0:1``, ``blocks.0:2``); ``#c`` is added for the
    c-th call of a module that runs more than once in one forward (shared weights)."""
    module: str
    index: int
    call: int
    shortcut: ShortcutKind
    modifiers: tuple[Modifier, ...]
    main_last: str
    """The module that produced the main operand's last step (innermost, inside the block); ""
    when the block's own code did."""
    skip_modules: tuple[str, ...]
    main_modules: tuple[str, ...]
    stage: int
    fork: int
    """Graph node of the fork point ``x``."""
    add: int
    """Graph node of the addition."""
    main_operand: int
    skip_operand: int
    input_shape: tuple[int, ...] = ()
    """Shape of the fork point ``x``."""
    output_shape: tuple[int, ...] = ()
    """Shape of the sum."""
    readers: tuple[tuple[int, str], ...] = ()
    """The operations that read the fork point, each with its branch (``main`` or ``skip``): where
    :class:`~resviz.measure.branches.SiteMode` hands each branch its own view of ``x``. The
    addition itself reads ``x`` for the branch that is ``x`` (an identity shortcut)."""


@dataclass(frozen=True)
class OtherAddition:
    """An addition of two tensors with a common ancestor that is not a residual block, and why."""

    module: str
    reason: NotResidual


@dataclass(frozen=True)
class Structure:
    """Every residual site of one forward pass, in execution order, and the additions that are not."""

    sites: tuple[ResidualSite, ...]
    others: tuple[OtherAddition, ...]
    notes: tuple[str, ...] = ()
    nodes: int = 0
    """Operations recorded in the forward (a later identical forward records as many)."""
    inplace: tuple[int, ...] = ()
    """The in-place operations of the forward (graph nodes): each may rewrite a layer's output
    after it was recorded, so recorded outputs are reduced before one runs."""

    @property
    def blocks(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sites)


def _operands(graph: Graph, node: Node) -> tuple[int, int] | None:
    tensors = [i for i in node.inputs if graph.nodes[i].kind not in (OpKind.PARAM, OpKind.CONST)]
    if len(node.inputs) != 2 or len(tensors) != 2:
        return None
    return tensors[0], tensors[1]


def _branch(graph: Graph, operand: int, before_fork: set[int]) -> list[Node]:
    """The nodes between the fork point and ``operand`` (inclusive), in execution order."""
    return [graph.nodes[i] for i in sorted(graph.ancestors(operand) - before_fork)]


def _is_short(branch: list[Node]) -> bool:
    kinds = [n.kind for n in branch]
    return (
        all(k in _SKIP_OK for k in kinds)
        and sum(k in (OpKind.CONV, OpKind.LINEAR) for k in kinds) <= MAX_SKIP_WEIGHTED
        and kinds.count(OpKind.NORM) <= MAX_SKIP_NORMS
    )


def _shortcut(branch: list[Node]) -> ShortcutKind:
    kinds = {n.kind for n in branch}
    if kinds & {OpKind.CONV, OpKind.LINEAR}:
        return ShortcutKind.POOLED_PROJECTION if OpKind.POOL in kinds else ShortcutKind.PROJECTION
    if OpKind.PAD in kinds or any(n.name == "__getitem__" for n in branch):
        return ShortcutKind.ZERO_PAD
    return ShortcutKind.POOLED if OpKind.POOL in kinds else ShortcutKind.IDENTITY


def _modifiers(graph: Graph, main: list[Node], fork: set[int]) -> tuple[Modifier, ...]:
    found: set[Modifier] = set()
    for node in main:
        if node.kind is not OpKind.MUL:
            continue
        srcs = [graph.nodes[i] for i in node.inputs]
        if any(s.kind is OpKind.PARAM for s in srcs):
            found.add(Modifier.LAYER_SCALE)
        for s in srcs:
            origin = _origin(graph, s.id)
            kinds = {n.kind for n in _branch(graph, s.id, fork)}
            if origin is OpKind.GATE and OpKind.POOL in kinds:
                found.add(Modifier.ECA if OpKind.CONV1D in kinds else Modifier.SE)
            elif origin is OpKind.RANDOM:
                found.add(Modifier.DROP_PATH)
    return tuple(sorted(found))


def _owner(graph: Graph, add: Node, operands: tuple[int, int]) -> str:
    """The module whose forward performed the addition; a module entered after both operands
    existed only joins them, and gives way to its parent."""
    module = add.module
    ready = max(operands)
    while module and _call_start(graph, module, add.id) > ready:
        module = module.rpartition(".")[0]
    return module


def _call_start(graph: Graph, module: str, node: int) -> int:
    """Where the call of ``module`` that ran ``node`` began (node count at its pre-hook)."""
    return max((s for s in graph.entered.get(module, ()) if s <= node), default=0)


def _main_last(graph: Graph, operand: int, block: str) -> str:
    """The module of the main branch's last computing operation: walking back from the operand
    through views and through what modifies the branch (a product with a parameter, a scalar, a
    gate or a random mask), the first other operation's module, when it lies inside the block."""
    node = graph.nodes[operand]
    while node.kind in (OpKind.VIEW, OpKind.MUL, OpKind.DROPOUT):
        data = [i for i in node.inputs if graph.nodes[i].kind not in (OpKind.PARAM, OpKind.CONST)]
        if node.kind is not OpKind.MUL:
            data = data[:1]  # the tensor viewed (``expand_as(x)`` reads x for its shape only)
        if node.kind is OpKind.MUL and len(data) == 2:
            data = [i for i in data if not _modulates(graph, i)]
        if len(data) != 1:
            break
        node = graph.nodes[data[0]]
    prefix = f"{block}." if block else ""
    return node.module if node.module.startswith(prefix) and node.module != block else ""


def _modulates(graph: Graph, node: int) -> bool:
    """Whether ``node`` is a gate (a sigmoid) or a random mask, which multiply a branch."""
    return _origin(graph, node) is not None


def _origin(graph: Graph, node: int) -> OpKind | None:
    """``GATE`` or ``RANDOM`` when ``node`` is a sigmoid gate or a random mask, seen through views
    and scalings (``mask.div_(keep)``, ``gate.view(...).expand_as(x)``); else None."""
    n = graph.nodes[node]
    if n.kind in (OpKind.GATE, OpKind.RANDOM):
        return n.kind
    data = [i for i in n.inputs if graph.nodes[i].kind not in (OpKind.PARAM, OpKind.CONST)]
    if n.kind is OpKind.VIEW and data:
        return _origin(graph, data[0])
    if n.kind is OpKind.MUL and data:
        found = {_origin(graph, i) for i in data}
        return found.pop() if len(found) == 1 else None
    return None


def _modules(branch: list[Node], block: str) -> tuple[str, ...]:
    prefix = f"{block}." if block else ""
    return tuple(dict.fromkeys(
        n.module for n in branch
        if n.module.startswith(prefix) and n.module != block and n.kind not in (OpKind.VIEW, OpKind.CONST, OpKind.PARAM)
    ))


def _resolution(shape: Sequence[int]) -> tuple[int, ...]:
    """What a stage keeps: the spatial size of an image tensor, the token count of a sequence."""
    return tuple(shape[2:]) if len(shape) == 4 else tuple(shape[1:-1])


def find_residuals(graph: Graph) -> Structure:
    """The residual sites and the other two-branch additions of ``graph`` (see the module docstring)."""
    sites: list[ResidualSite] = []
    others: list[OtherAddition] = []
    per_call: dict[tuple[str, int], int] = {}
    for node in graph.nodes:
        if node.kind is not OpKind.ADD:
            continue
        pair = _operands(graph, node)
        if pair is None:
            continue
        a, b = pair
        common = graph.ancestors(a) & graph.ancestors(b)
        common = {i for i in common if graph.nodes[i].kind not in (OpKind.PARAM, OpKind.CONST)}
        if not common:
            continue  # a position embedding, a bias: nothing in common
        if graph.nodes[a].shape != graph.nodes[b].shape:
            others.append(OtherAddition(node.module, NotResidual.SHAPES))
            continue
        fork = max(common)
        before = graph.ancestors(fork)
        ba, bb = _branch(graph, a, before), _branch(graph, b, before)
        skip_op, main_op, skip, main = (a, b, ba, bb) if len(ba) <= len(bb) else (b, a, bb, ba)
        if not _is_short(skip) or not any(n.kind in _WEIGHTED for n in main) or len(main) <= len(skip):
            others.append(OtherAddition(node.module, NotResidual.BRANCH_SUM))
            continue
        if any(n.kind is OpKind.UPSAMPLE for n in main):
            others.append(OtherAddition(node.module, NotResidual.LONG_SKIP))
            continue
        block = _owner(graph, node, (a, b))
        start = _call_start(graph, block, node.id)
        index = per_call[block, start] = per_call.get((block, start), 0) + 1
        call = sorted(graph.entered.get(block, [0])).index(start) + 1 if block in graph.entered else 1
        sites.append(ResidualSite(
            name=block, module=block, index=index, call=call, shortcut=_shortcut(skip),
            modifiers=_modifiers(graph, main, before), main_last=_main_last(graph, main_op, block),
            skip_modules=_modules(skip, block), main_modules=_modules(main, block), stage=0,
            fork=fork, add=node.id, main_operand=main_op, skip_operand=skip_op,
            readers=_readers(graph, fork, node, main, skip, skip_op),
            input_shape=graph.nodes[fork].shape, output_shape=node.shape,
        ))
    return Structure(_staged(graph, _named(sites)), tuple(others), nodes=len(graph.nodes),
                     inplace=tuple(n.id for n in graph.nodes if n.inplace))


def _readers(
    graph: Graph, fork: int, add: Node, main: list[Node], skip: list[Node], skip_op: int,
) -> tuple[tuple[int, str], ...]:
    found = [(n.id, branch) for branch, nodes in (("main", main), ("skip", skip)) for n in nodes if fork in n.inputs]
    if fork in add.inputs:
        found.append((add.id, "skip" if skip_op == fork else "main"))
    return tuple(sorted(found))


def _named(sites: list[ResidualSite]) -> list[ResidualSite]:
    several = {s.module for s in sites if s.index > 1}

    def name(s: ResidualSite) -> str:
        base = s.module or ROOT
        return base + (f":{s.index}" if s.module in several else "") + (f"#{s.call}" if s.call > 1 else "")

    return [replace(s, name=name(s)) for s in sites]


def _staged(graph: Graph, sites: list[ResidualSite]) -> tuple[ResidualSite, ...]:
    out: list[ResidualSite] = []
    stage, last = 0, None
    for s in sites:
        here = _resolution(graph.nodes[s.add].shape)
        if last is not None and here != last:
            stage += 1
        last = here
        out.append(replace(s, stage=stage))
    return tuple(out)




_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], Structure]] = weakref.WeakKeyDictionary()


def fingerprint(model: nn.Module) -> tuple[Any, ...]:
    """What a cached structure depends on besides the input: the modules (a replaced submodule
    changes it), the training flags and the in-place flags."""
    return tuple((name, id(m), m.training, getattr(m, "inplace", None)) for name, m in model.named_modules())


def discover(
    model: nn.Module, input_shape: Sequence[int], dtype: torch.dtype = torch.float32, real: bool = True,
) -> Structure:
    """The residual structure of ``model`` on inputs of ``input_shape``, found once and cached
    (per model, input shape, dtype and module layout).

    Runs on the meta device (stand-ins for every parameter and buffer: the model is never touched,
    and the cost does not grow with the input); a model whose forward cannot run there (it reads
    values, ``.item()``) runs once for real on zeros (a batch of :data:`REAL_BATCH`, so that
    BatchNorm trains), in its own mode, under ``no_grad``, its buffers
    restored, with a note (not with ``real=False``: then the meta device's error is raised).
    A model whose forward fails either way raises its error.
    """
    key = (tuple(int(d) for d in input_shape), dtype, fingerprint(model))
    cached = _CACHE.setdefault(model, {})
    if key not in cached:
        cached.clear()  # one layout per model is enough: an edited model is discovered afresh
        cached[key] = _discover(model, tuple(int(d) for d in input_shape), dtype, real)
    return cached[key]


def _discover(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, real: bool) -> Structure:
    with without_hooks(model):  # the monitor's counting hook, among others, never sees this forward
        return _discover_once(model, shape, dtype, real)


def _discover_once(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, real: bool) -> Structure:
    try:
        with FastMeta(), torch.no_grad():
            graph = record_graph(model, torch.empty(shape, dtype=dtype, device="meta"), meta_state(model))
        return find_residuals(graph)
    except (NotImplementedError, RuntimeError, TypeError) as exc:
        if not real or not needs_real(exc):
            raise
    with held_real(model, evaluate=False):  # its own mode: the traced forward must run the same operations
        graph = record_graph(model, torch.zeros((REAL_BATCH, *shape[1:]), dtype=dtype, device=device_of(model)))
    found = find_residuals(graph)
    return replace(found, sites=tuple(_rebatched(s, shape[0]) for s in found.sites),
                   notes=(*found.notes, "structure found from a real forward pass of zeros: "
                          "the model does not run on the meta device"))


REAL_BATCH = 2
"""The batch of discovery's real pass: two, so that BatchNorm can train; the sites' shapes are then
given the batch asked for."""


def _rebatched(site: ResidualSite, batch: int) -> ResidualSite:
    def fix(shape: tuple[int, ...]) -> tuple[int, ...]:
        return (batch, *shape[1:]) if shape and shape[0] == REAL_BATCH else shape

    return replace(site, input_shape=fix(site.input_shape), output_shape=fix(site.output_shape))




PAPER_STAGE = re.compile(r"^conv(1|\d+_x)$")


class Layout:
    """Where each executed module sits: its residual block, its branch and its stage.

    Built from the residual sites (:class:`Structure`): a module computing part of a site's main
    branch or shortcut belongs to that site and branch; another module inside the site's own
    module (a pre-activation before the fork, the activation after the sum) to that site's main
    branch. Stages are named after the paper (``conv2_x`` for torchvision's ``layer1``, via
    ``stage_name``) where the names allow, else after the modules their blocks share
    (``stages.0``, ``blocks``), else ``stage1``...; modules before the first block are the
    ``stem``, after the last the ``head``.
    """

    def __init__(self, sites: Sequence[ResidualSite], stage_name: Callable[[str], str]) -> None:
        self.sites = tuple(sites)
        self.stage_name = stage_name
        self._by_module: dict[str, tuple[str, Branch]] = {}
        self._by_block: dict[str, str] = {}
        self.modules = {s.name: s.module for s in self.sites}
        """The module of each block."""
        for s in self.sites:
            for m in s.main_modules:
                self._by_module.setdefault(m, (s.name, Branch.MAIN))
            for m in s.skip_modules:
                self._by_module.setdefault(m, (s.name, Branch.SKIP))
            self._by_block.setdefault(s.module, s.name)
        self.stages = self._stage_names()

    def _stage_names(self) -> dict[str, str]:
        """Stage name of each site."""
        groups: dict[int, list[ResidualSite]] = {}
        for s in self.sites:
            groups.setdefault(s.stage, []).append(s)
        out: dict[str, str] = {}
        for k, members in groups.items():
            paper = {self.stage_name(s.module) for s in members}
            if len(paper) == 1 and PAPER_STAGE.match(next(iter(paper))):
                name = paper.pop()
            else:
                prefix = _common_parent([s.module for s in members])
                name = prefix or f"stage{k + 1}"
            for s in members:
                out[s.name] = name
        return out

    def block_of(self, layer: str) -> tuple[str, Branch]:
        """The site a module belongs to (``""`` outside every block) and its branch."""
        parts = layer.split(".")
        for i in range(len(parts), 0, -1):
            found = self._by_module.get(".".join(parts[:i]))
            if found is not None:
                return found
        for i in range(len(parts) - 1, 0, -1):
            block = self._by_block.get(".".join(parts[:i]))
            if block is not None:
                return block, Branch.MAIN
        return "", Branch.OUTSIDE

    def places(self, layers: Sequence[str]) -> list[tuple[str, Branch, str]]:
        """``(block, branch, stage)`` of each module in ``layers``, given in execution order."""
        found = [self.block_of(name) for name in layers]
        out: list[tuple[str, Branch, str]] = []
        later = ""  # the stage of the next block: a transition between stages leads into it
        for name, (block, branch) in reversed(list(zip(layers, found, strict=True))):
            if block:
                later = self.stages[block]
                out.append((block, branch, later))
                continue
            paper = self.stage_name(name)
            out.append(("", Branch.OUTSIDE, paper if PAPER_STAGE.match(paper) else later or "head"))
        out.reverse()
        first = next((i for i, (b, _) in enumerate(found) if b), len(found))
        return [(b, br, "stem" if i < first and not PAPER_STAGE.match(self.stage_name(layers[i])) else st)
                for i, (b, br, st) in enumerate(out)]


def _common_parent(modules: Sequence[str]) -> str:
    """The longest dotted prefix shared by every module name, stopping above the modules themselves."""
    parts = [m.split(".")[:-1] for m in modules]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


__all__ = [
    "Layout",
    "Modifier",
    "NotResidual",
    "OtherAddition",
    "ResidualSite",
    "Structure",
    "discover",
    "find_residuals",
    "fingerprint",
]
