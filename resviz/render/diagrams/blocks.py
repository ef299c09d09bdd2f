"""Views of single residual blocks: ``basic-block``, ``bottleneck`` and ``skip-types``.

He et al. 2015, Fig. 2 (basic) and Fig. 5 (bottleneck); He et al. 2016, Fig. 4(e) for the
pre-activation order BN-ReLU-conv with nothing after the addition. The drawn block is a real block
of the model: its kernels, channels, strides and shapes are the model's, its layer order is the
execution order recorded by the static analysis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resviz.records import BlockRecord, BlockType, LayerRecord, ShortcutKind
from resviz.render.diagrams._style import add_edge, add_node, hwc, legend, lines, new_graph
from resviz.render.diagrams.blockgraph import BlockLayout, draw_block, layout_block, order_text
from resviz.render.diagrams.context import Context

if TYPE_CHECKING:
    import graphviz

    from resviz.render.diagrams.metrics import ColorScale

BASIC_KINDS: tuple[BlockType, ...] = tuple(k for k in BlockType if not k.bottleneck)
BOTTLENECK_KINDS: tuple[BlockType, ...] = tuple(k for k in BlockType if k.bottleneck)
SKIP_ORDER: tuple[ShortcutKind, ...] = (ShortcutKind.IDENTITY, ShortcutKind.PROJECTION, ShortcutKind.ZERO_PAD)


def _unit_values(ctx: Context, lay: BlockLayout) -> list[float | None]:
    return [ctx.metrics.value([[lay.block.absolute(r) for r in u.rels]]) for u in lay.units]


def _draw_one(ctx: Context, g: graphviz.Digraph, lay: BlockLayout, prefix: str,
              scale: ColorScale | None) -> None:
    """Input node, the block, output node."""
    b = lay.block
    add_node(g, f"{prefix}input", lines("input", hwc(b.input_shape)), "io", group=f"{prefix}main")
    out, shape = draw_block(g, lay, f"{prefix}input", b.input_shape, prefix, ctx.metrics, scale)
    add_node(g, f"{prefix}output", lines("output", hwc(b.output_shape)), "io", group=f"{prefix}main")
    add_edge(g, out, f"{prefix}output", shape, weight="4")


def describe(b: BlockRecord, layers: list[LayerRecord]) -> str:
    """The second line of a block's title: the paper's name for the order of a ResNet block, the
    block's own order of operations for any other (:func:`~resviz.render.diagrams.blockgraph.order_text`)."""
    if b.kind == BlockType.OTHER:
        return f"main path: {order_text(b, layers)}"
    return "pre-activation: BN-ReLU-conv" if b.kind.preact else "post-activation"


def _block_view(ctx: Context, view: str, kinds: tuple[BlockType, ...]) -> graphviz.Digraph:
    b = ctx.pick_block(kinds)
    lay = layout_block(b, ctx.by_block[b.name])
    g = new_graph(view, ctx.summary, view)
    scale = ctx.scale_for(_unit_values(ctx, lay))
    with g.subgraph(name="cluster_block") as sub:
        order = describe(b, ctx.by_block[b.name])
        sub.attr(label=lines(f"{b.name} ({b.stage}): {b.kind}, {b.shortcut} shortcut", order),
                 style="rounded", color="#888888")
        _draw_one(ctx, sub, lay, "", scale)
    legend(g, kinds=sorted({u.kind for u in lay.units} | {"io"}), skips=[b.shortcut], scale=scale)
    return g


def basic_block(ctx: Context) -> graphviz.Digraph:
    """Two 3x3 convolutions and the skip joining at the addition (He et al. 2015, Fig. 2)."""
    return _block_view(ctx, "basic-block", BASIC_KINDS)


def bottleneck(ctx: Context) -> graphviz.Digraph:
    """1x1 reduce, 3x3, 1x1 expand, and the skip (He et al. 2015, Fig. 5 right)."""
    return _block_view(ctx, "bottleneck", BOTTLENECK_KINDS)


def skip_types(ctx: Context) -> graphviz.Digraph:
    """One real block per shortcut kind the model uses, side by side, with how many blocks use it."""
    g = new_graph("skip_types", ctx.summary, "skip-types")
    used: dict[ShortcutKind, list[BlockRecord]] = {}
    for b in ctx.residual_blocks:
        used.setdefault(b.shortcut, []).append(b)
    kinds = [k for k in SKIP_ORDER if k in used] + sorted(set(used) - set(SKIP_ORDER))
    layouts = {k: layout_block(used[k][0], ctx.by_block[used[k][0].name]) for k in kinds}
    scale = ctx.scale_for([v for k in kinds for v in _unit_values(ctx, layouts[k])])
    unit_kinds = {"io"}
    for k in kinds:
        lay = layouts[k]
        blocks = used[k]
        names = ", ".join(b.name for b in blocks[:3]) + (", ..." if len(blocks) > 3 else "")
        with g.subgraph(name=f"cluster_{k}") as sub:
            sub.attr(label=lines(f"{k} shortcut", f"{len(blocks)} of {len(ctx.residual_blocks)} blocks",
                                 names, _explain(lay.block)),
                     style="rounded", color="#888888")
            _draw_one(ctx, sub, lay, f"{k}/", scale)
        unit_kinds |= {u.kind for u in lay.units}
    legend(g, kinds=sorted(unit_kinds), skips=kinds, scale=scale)
    return g


def _explain(b: BlockRecord) -> str:
    """What the shortcut computes (He et al. 2015, Sec. 3.3, options A/B/C)."""
    cin, cout = b.input_shape[1], b.output_shape[1]
    if b.shortcut == ShortcutKind.IDENTITY:
        return f"y = F(x) + x  ({cin} ch)"
    if b.shortcut == ShortcutKind.PROJECTION:
        return f"y = F(x) + W_s x  ({cin} -> {cout} ch)"
    if b.shortcut == ShortcutKind.ZERO_PAD:
        return f"y = F(x) + pad(x)  ({cin} -> {cout} ch, zeros)"
    return b.shortcut
