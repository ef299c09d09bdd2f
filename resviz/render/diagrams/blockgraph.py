"""The inside of a residual block, recovered from a Summary, and how to draw it.

A block's layers carry ``branch`` tags (main / skip / join) from the static analysis; the order
of the records is execution order. From that alone we know the main path, the skip path, the
addition and what follows it (the post-activation ReLU of He et al. 2015). One fact is not in the
records: in a pre-activation block with a projection shortcut, the skip path starts *after* the
first BN-ReLU (He et al. 2016, Appendix, and its reference code, which resviz's blocks follow), so
the fork is moved there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from resviz.records import BlockRecord, Branch, LayerRecord, Shape, ShortcutKind, Summary
from resviz.render import theme
from resviz.render.diagrams._style import add_edge, add_node, lines, skip_edge

if TYPE_CHECKING:
    import graphviz

    from resviz.render.diagrams.metrics import ColorScale, Metrics


@dataclass(frozen=True)
class Unit:
    """One drawn node inside a block: a layer, or several folded to a depth (``downsample``)."""

    rel: str
    label: str
    kind: str
    branch: Branch
    input_shape: Shape
    output_shape: Shape
    rels: tuple[str, ...]


@dataclass(frozen=True)
class BlockLayout:
    """A block split into pre-fork, main, skip, join and post-join units."""

    block: BlockRecord
    pre: tuple[Unit, ...]
    main: tuple[Unit, ...]
    skip: tuple[Unit, ...]
    join: Unit | None
    post: tuple[Unit, ...]

    @property
    def units(self) -> tuple[Unit, ...]:
        return (*self.pre, *self.main, *self.skip, *((self.join,) if self.join else ()), *self.post)


def layers_by_block(summary: Summary) -> dict[str, list[LayerRecord]]:
    out: dict[str, list[LayerRecord]] = {}
    for lr in summary.layers:
        if lr.block:
            out.setdefault(lr.block, []).append(lr)
    return out


def conv_text(lr: LayerRecord) -> str:
    """``3x3 conv, 64, /2`` (kernel, output channels, stride, groups) as the papers' tables read."""
    k = "x".join(str(d) for d in lr.kernel) if lr.kernel else "?"
    parts = [f"{k} conv, {lr.output_shape[1]}"]
    if lr.stride and max(lr.stride) > 1:
        parts.append(f"/{max(lr.stride)}")
    if lr.groups > 1:
        parts.append(f"g={lr.groups}")
    return ", ".join(parts)


def layer_text(lr: LayerRecord) -> str:
    """What a layer does, in a few words, from its record."""
    kind = theme.layer_kind(lr.type)
    if lr.type == "ZeroPadShortcut":
        extra = lr.output_shape[1] - lr.input_shape[1]
        stride = lr.input_shape[-1] // max(lr.output_shape[-1], 1) if len(lr.input_shape) == 4 else 1
        return "zero-pad" + (f" +{extra} ch" if extra else "") + (f", /{stride}" if stride > 1 else "")
    if lr.type == "ResidualAdd":
        return "+"
    if kind == "conv":
        return conv_text(lr)
    if kind == "norm":
        return "BatchNorm" if "batch" in lr.type.lower() else lr.type
    if kind == "act":
        return lr.type
    if kind == "pool":
        if "adaptive" in lr.type.lower():
            return "global avg pool" if "avg" in lr.type.lower() else lr.type
        k = "x".join(str(d) for d in lr.kernel)
        op = "max-pool" if "max" in lr.type.lower() else "avg-pool"
        step = f", /{max(lr.stride)}" if lr.stride and max(lr.stride) > 1 else ""
        return f"{k} {op}{step}"
    if kind == "linear":
        return f"FC, {lr.output_shape[-1]}"
    return lr.type


#: Layer types that pass their input through in a drawing's order text (at rate 0 or in eval mode).
PASS_THROUGH = frozenset({"Identity", "Dropout", "DropPath", "Dropout2d", "StochasticDepth"})
_NORM_WORDS = (("batch", "BN"), ("layer", "LN"), ("group", "GN"), ("instance", "IN"))
_PRODUCT_WORDS = {"scaled_dot_product_attention": "attention", "matmul": "matmul", "rmatmul": "matmul",
                  "bmm": "matmul", "mm": "matmul", "baddbmm": "matmul", "addbmm": "matmul"}


def op_word(type_name: str) -> str | None:
    """A layer type as one word of an order such as ``LN-FC-attention-FC``; ``None`` for a layer
    that passes its input through (:data:`PASS_THROUGH`)."""
    if type_name in PASS_THROUGH:
        return None
    if type_name in _PRODUCT_WORDS:
        return _PRODUCT_WORDS[type_name]
    kind = theme.layer_kind(type_name)
    if kind == "norm":
        lower = type_name.lower()
        return next((word for key, word in _NORM_WORDS if key in lower), type_name)
    return {"conv": "conv", "linear": "FC", "pool": "pool"}.get(kind, type_name)


def order_text(block: BlockRecord, layers: Sequence[LayerRecord]) -> str:
    """The main path's operations in the order they run, from the block's own layers
    (``conv-LN-FC-GELU-FC`` for a ConvNeXt block, ``LN-FC-attention-FC`` for a ViT attention
    residual), and what runs after the addition; how block views describe a block of a kind
    the papers did not name."""
    joins = [i for i, lr in enumerate(layers) if lr.branch == Branch.JOIN]
    cut = joins[-1] if joins else len(layers)
    main = [w for lr in layers[:cut] if lr.branch == Branch.MAIN and (w := op_word(lr.type))]
    after = [w for lr in layers[cut + 1:] if lr.branch != Branch.SKIP and (w := op_word(lr.type))]
    return ("-".join(main) or "no weighted layer") + (f", then {'-'.join(after)}" if after else "")


def unit_kind(recs: Sequence[LayerRecord]) -> str:
    if recs[0].type == "ResidualAdd":
        return "add"
    kinds = [theme.layer_kind(r.type) for r in recs]
    return "conv" if "conv" in kinds else kinds[0]


def make_unit(rel: str, recs: Sequence[LayerRecord]) -> Unit:
    """A node for one or more consecutive layers sharing the name prefix ``rel``."""
    if len(recs) == 1:
        text = layer_text(recs[0])
        label = text if text == "+" else lines(rel, text)
    else:
        label = lines(rel, " + ".join(layer_text(r) for r in recs))
    return Unit(
        rel=rel, label=label, kind=unit_kind(recs), branch=recs[0].branch,
        input_shape=recs[0].input_shape, output_shape=recs[-1].output_shape,
        rels=tuple(r.name for r in recs),
    )


def group_layers(layers: Sequence[LayerRecord], rel: Callable[[str], str], depth: int | None) -> list[Unit]:
    """Consecutive layers grouped by the first ``depth`` components of their names (None: leaves);
    each unit is named by ``rel`` of its name (relative to a block's module, or the name itself)."""
    units: list[Unit] = []
    run: list[LayerRecord] = []
    key = ""
    for lr in layers:
        parts = lr.name.split(".")
        k = ".".join(parts[:depth]) if depth else lr.name
        if run and k != key:
            units.append(make_unit(rel(key), run))
            run = []
        key = k
        run.append(lr)
    if run:
        units.append(make_unit(rel(key), run))
    return units


def layout_block(block: BlockRecord, layers: Sequence[LayerRecord], depth: int | None = None) -> BlockLayout:
    """Split a block's (grouped) layers into the parts of a residual block drawing."""
    units = group_layers(layers, block.relative, depth)
    # Names inside the unit become relative to the block so folded runs share node ids.
    units = [Unit(u.rel, u.label, u.kind, u.branch, u.input_shape, u.output_shape,
                  tuple(block.relative(n) for n in u.rels)) for u in units]
    main: list[Unit] = []
    skip: list[Unit] = []
    post: list[Unit] = []
    join: Unit | None = None
    for u in units:
        if u.branch == Branch.JOIN:
            join = u
        elif u.branch == Branch.SKIP:
            skip.append(u)
        elif join is not None:
            post.append(u)
        else:
            main.append(u)
    pre: list[Unit] = []
    shared = block.kind.preact and block.shortcut == ShortcutKind.PROJECTION
    if shared and len(main) >= 2 and main[0].kind == "norm" and main[1].kind == "act":
        pre, main = main[:2], main[2:]
    return BlockLayout(block, tuple(pre), tuple(main), tuple(skip), join, tuple(post))


def draw_block(
    g: graphviz.Digraph, lay: BlockLayout, src: str, src_shape: Shape, prefix: str,
    metrics: Metrics | None = None, scale: ColorScale | None = None,
    run: Sequence[BlockRecord] = (),
) -> tuple[str, Shape]:
    """Draw ``lay`` below node ``src``; return the id and shape of the block's output node.

    ``run`` lists the blocks a folded node stands for (metric values are averaged over them).
    """
    blocks = tuple(run) or (lay.block,)

    def node(u: Unit) -> str:
        nid = prefix + u.rel
        value = metrics.value([[b.absolute(r) for r in u.rels] for b in blocks]) if metrics else None
        extra = {"group": prefix + "main"} if u.branch != Branch.SKIP else {}
        add_node(g, nid, u.label, u.kind, value, scale, **extra)
        return nid

    cur, shape = src, src_shape
    for u in (*lay.pre, *lay.main):
        nid = node(u)
        add_edge(g, cur, nid, shape, weight="4")
        cur, shape = nid, u.output_shape
    if lay.join is not None:
        fork = prefix + lay.pre[-1].rel if lay.pre else src
        fork_shape = lay.pre[-1].output_shape if lay.pre else src_shape
        jid = node(lay.join)
        add_edge(g, cur, jid, shape, weight="4")
        s, s_shape = fork, fork_shape
        for u in lay.skip:
            nid = node(u)
            skip_edge(g, s, nid, lay.block.shortcut, s_shape)
            s, s_shape = nid, u.output_shape
        skip_edge(g, s, jid, lay.block.shortcut, s_shape)
        cur, shape = jid, lay.join.output_shape
    for u in lay.post:
        nid = node(u)
        add_edge(g, cur, nid, shape, weight="4")
        cur, shape = nid, u.output_shape
    return cur, shape


def block_signature(block: BlockRecord, layers: Sequence[LayerRecord]) -> tuple[object, ...]:
    """Two blocks with equal signatures draw identically: they can be folded into one ("x35")."""
    return (block.kind, block.shortcut, block.input_shape, block.output_shape,
            tuple((block.relative(lr.name), lr.type, lr.input_shape, lr.output_shape, lr.kernel, lr.stride,
                   lr.groups, lr.branch) for lr in layers))


def block_runs(summary: Summary) -> list[list[BlockRecord]]:
    """Consecutive blocks of one stage with equal signatures, in order."""
    by_block = layers_by_block(summary)
    runs: list[list[BlockRecord]] = []
    last: tuple[object, ...] | None = None
    for b in summary.blocks:
        sig = (b.stage, block_signature(b, by_block.get(b.name, [])))
        if runs and sig == last:
            runs[-1].append(b)
        else:
            runs.append([b])
        last = sig
    return runs


def run_name(run: Sequence[BlockRecord]) -> str:
    """``layer3.1 - layer3.35 (x35)`` for a folded run, the block name for a single block."""
    if len(run) == 1:
        return run[0].name
    return f"{run[0].name} - {run[-1].name} (x{len(run)})"
