"""The ``gradient-flow`` view: forward and backward through each block, with measured norms.

At a block input x, the gradient is the sum of what arrives through the main path and through
the skip path, dL/dx = dL/dy (dF/dx) + dL/dy (dS/dx) (He et al. 2016, Eq. 5): with an identity
skip the second term passes dL/dy through unchanged, which is why deep ResNets train. Each
block is drawn with its forward edges (black, skip in its theme style) and two backward edges
(main in blue, skip in vermilion) labelled and weighted by the L2 norms a trace measured.
Long stages are folded to their first and last block so that deep nets stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from resviz.records import BlockRecord, BlockStats, BlockType, ShortcutKind
from resviz.render import theme
from resviz.render.diagrams._style import add_edge, add_node, hwc, legend, lines, new_graph, safe_id, skip_edge
from resviz.render.diagrams.blockgraph import layout_block, order_text, run_name
from resviz.render.diagrams.context import Context
from resviz.render.diagrams.metrics import grad_ratio, measured
from resviz.render.format import sci

if TYPE_CHECKING:
    import graphviz

    from resviz.render.diagrams.metrics import ColorScale

MAX_BLOCKS = 16
"""Above this many blocks, each stage shows its first and last block and folds the rest."""


def _plan(ctx: Context) -> list[list[BlockRecord]]:
    """Blocks to draw in order; a list longer than one is a folded stretch of a stage."""
    if ctx.block is not None:
        return [[ctx.pick_block()]]
    blocks = list(ctx.summary.blocks)
    if len(blocks) <= MAX_BLOCKS:
        return [[b] for b in blocks]
    plan: list[list[BlockRecord]] = []
    for stage in dict.fromkeys(b.stage for b in blocks):
        bs = [b for b in blocks if b.stage == stage]
        plan.append([bs[0]])
        if len(bs) > 2:
            plan.append(bs[1:-1])
        if len(bs) > 1:
            plan.append([bs[-1]])
    return plan


def _main_text(ctx: Context, b: BlockRecord) -> str:
    lay = layout_block(b, ctx.by_block[b.name])
    convs = [u.label.split("\\n", 1)[-1] for u in (*lay.pre, *lay.main) if u.kind == "conv"]
    if b.kind == BlockType.OTHER:
        return lines("main path F(x)", *convs, order_text(b, ctx.by_block[b.name]))
    order = "BN-ReLU-conv" if b.kind.preact else "conv-BN-ReLU"
    return lines("main path F(x)", *convs, order)


def _backward_text(b: BlockRecord) -> str:
    """What the backward pass through F goes through: named for a ResNet block, generic otherwise."""
    if b.kind == BlockType.OTHER:
        return lines("backward through F", "(its layers' transposes, in reverse)")
    return lines("backward through F", "(transposed convs, BN, ReLU mask)")


def gradient_flow(ctx: Context) -> graphviz.Digraph:
    """Two lanes per block: the forward pass going down, the backward pass coming back up."""
    g = new_graph("gradient_flow", ctx.summary, "gradient-flow")
    traced = ctx.trace.blocks if ctx.trace else ()
    stats: dict[str, BlockStats] = {s.name: s for s in traced if measured(s) and s.call == 1}
    plan = _plan(ctx)
    top = max((max(s.grad_main or 0.0, s.grad_skip or 0.0) for s in stats.values()), default=0.0)
    values = [ctx.metrics.block_value([b.name for b in item]) for item in plan]
    scale = ctx.scale_for(values)
    shape = plan[0][0].input_shape
    with g.subgraph(name="lanes_in") as row:
        row.attr(rank="same")
        add_node(row, "input", lines("block input" if ctx.block else "stem output", hwc(shape)), "io")
        add_node(row, "g/input", "dL/dx to the stem", "io")
    prev = ("input", "g/input")
    for item, value in zip(plan, values, strict=True):
        if len(item) > 1:
            prev, shape = _folded(g, item, prev, shape, stats, value, scale)
        else:
            prev, shape = _block(ctx, g, item[0], prev, shape, stats.get(item[0].name), top, value, scale)
    with g.subgraph(name="lanes_out") as row:
        row.attr(rank="same")
        add_node(row, "output", lines("to the head", hwc(shape)), "io")
        add_node(row, "g/output", "dL/dy from the loss", "io")
    add_edge(g, prev[0], "output", shape, weight="4")
    _back(g, prev[1], "g/output", theme.MAIN_COLOR, None, "1.5")
    notes = ["left lane: forward pass; right lane: backward pass (arrows point up)",
             "blue: gradient through the main path F, |dL/dx| (L2 norm)",
             "vermilion: gradient through the skip path", "pen width: gradient norm"]
    if not stats:
        notes.append("no trace given: norms not measured")
    skips = sorted({b.shortcut for item in plan for b in item} - {ShortcutKind.NONE})
    legend(g, kinds=["io", "conv", "add"], skips=skips, scale=scale, notes=notes)
    return g


def _width(x: float | None, top: float) -> str:
    return f"{1.0 + 4.0 * ((x or 0.0) / top if top > 0 else 0.0):.2f}"


def _back(g: graphviz.Digraph, upper: str, lower: str, color: str, label: str | None,
          width: str, measured: bool = True) -> None:
    """A backward edge drawn from ``upper`` to ``lower`` with ``dir=back``: it points up."""
    attrs = {"dir": "back", "color": color, "fontcolor": color, "penwidth": width, "arrowtail": "vee",
             "weight": "4"}
    if not measured:
        attrs["style"] = "dotted"
    if label:
        attrs["label"] = label
    g.edge(safe_id(upper), safe_id(lower), **attrs)


def _block(
    ctx: Context, g: graphviz.Digraph, b: BlockRecord, prev: tuple[str, str], shape: tuple[int, ...],
    s: BlockStats | None, top: float, value: float | None, scale: ColorScale | None,
) -> tuple[tuple[str, str], tuple[int, ...]]:
    n = b.name
    x, f, add, gx, gf, gy = f"x/{n}", f"F/{n}", f"add/{n}", f"gx/{n}", f"gF/{n}", f"gy/{n}"
    residual = b.shortcut != ShortcutKind.NONE
    with g.subgraph(name=f"cluster_{n}") as sub:
        sub.attr(label=f"{n} ({b.kind}, {b.shortcut})", style="rounded", color="#888888",
                 fontsize=str(theme.FONT_SIZE))
        for row, (left, right) in enumerate(((x, gx), (f, gf), (add, gy))):
            with sub.subgraph(name=f"rank_{n}_{row}") as r:
                r.attr(rank="same")
                if row == 0:
                    add_node(r, left, lines(f"x ({n} input)", hwc(b.input_shape)), "io")
                    total = f"|dL/dx| = {sci(s.grad_total)}" if s else ""
                    add_node(r, right, lines("dL/dx", total), "io")
                elif row == 1:
                    add_node(r, left, _main_text(ctx, b), "conv", value, scale)
                    add_node(r, right, _backward_text(b), "conv", value, scale)
                else:
                    add_node(r, left, "+" if residual else "=", "add")
                    add_node(r, right, "dL/dy", "io")
    add_edge(g, prev[0], x, shape, weight="4")
    add_edge(g, x, f, b.input_shape, weight="4")
    add_edge(g, f, add, b.output_shape, weight="4")
    if residual:
        skip_edge(g, x, add, b.shortcut, b.input_shape)
    _back(g, prev[1], gx, theme.MAIN_COLOR, None, "1.5", measured=s is not None)
    main_w = _width(s.grad_main, top) if s else "1.2"
    _back(g, gx, gf, theme.MAIN_COLOR, f" main {sci(s.grad_main)}" if s else None, main_w, s is not None)
    _back(g, gf, gy, theme.MAIN_COLOR, None, main_w, s is not None)
    if residual:
        ratio = grad_ratio(s) if s else None
        text = (f" skip {sci(s.grad_skip)}" + (f"\\nmain/skip {sci(ratio)}" if ratio is not None else "")
                if s else None)
        _back(g, gx, gy, theme.SKIP_COLOR, text, _width(s.grad_skip, top) if s else "1.2", s is not None)
    return (add, gy), b.output_shape


def _folded(
    g: graphviz.Digraph, item: Sequence[BlockRecord], prev: tuple[str, str], shape: tuple[int, ...],
    stats: dict[str, BlockStats], value: float | None, scale: ColorScale | None,
) -> tuple[tuple[str, str], tuple[int, ...]]:
    """A stretch of blocks as one node per lane, with the range of the measured main/skip ratios."""
    fwd, bwd = f"fold/{item[0].name}", f"gfold/{item[0].name}"
    ratios = [r for r in (grad_ratio(stats[b.name]) for b in item if b.name in stats) if r is not None]
    extra = f"main/skip {sci(min(ratios))} - {sci(max(ratios))}" if ratios else ""
    title = run_name(item)
    with g.subgraph(name=f"rank_{item[0].name}_fold") as r:
        r.attr(rank="same")
        add_node(r, fwd, lines(title, f"{item[0].kind} blocks"), "conv", value, scale,
                 style="rounded,filled,dashed")
        add_node(r, bwd, lines(title, "backward", extra), "io", style="filled,dashed")
    add_edge(g, prev[0], fwd, shape, weight="4")
    _back(g, prev[1], bwd, theme.MAIN_COLOR, None, "1.5", measured=bool(ratios))
    return (fwd, bwd), item[-1].output_shape
