"""The ``layers`` view: the full layer graph, folded to a depth and with repeated blocks folded.

Deep nets repeat one block many times (resnet152's conv4_x: 36 bottlenecks; preact_resnet1001:
111 per stage). Consecutive blocks with identical structure and shapes are drawn once, with the
range and a count ("x35"), so the picture stays readable while every distinct block is shown.
``depth`` folds by module name: 1 = stages (``layer3``), 2 = blocks (``layer3.4``), 3+ = layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from resviz.records import BlockRecord, LayerRecord, Shape, ShortcutKind
from resviz.render import theme
from resviz.render.diagrams._style import add_edge, add_node, hwc, legend, lines, new_graph
from resviz.render.diagrams.blockgraph import draw_block, group_layers, layout_block, run_name, unit_kind
from resviz.render.diagrams.context import Context
from resviz.render.diagrams.overview import _block_label, _skip_border, blocks_text, folded_runs

if TYPE_CHECKING:
    import graphviz

    from resviz.render.diagrams.metrics import ColorScale


def _items(ctx: Context) -> list[LayerRecord | list[BlockRecord]]:
    """Layers outside blocks and runs of blocks, in execution order."""
    run_of = {r[0].name: r for r in folded_runs(ctx)}
    inside = {b.name for r in run_of.values() for b in r[1:]}
    items: list[LayerRecord | list[BlockRecord]] = []
    seen: set[str] = set()
    for lr in ctx.summary.layers:
        if not lr.block:
            items.append(lr)
        elif lr.block not in seen and lr.block not in inside:
            seen.add(lr.block)
            items.append(run_of[lr.block])
    return items


def layers(ctx: Context) -> graphviz.Digraph:
    g = new_graph("layers", ctx.summary, "layers" + (f" (depth {ctx.depth})" if ctx.depth else ""))
    block_depth = min((b.name.count(".") + 1 for b in ctx.summary.blocks), default=0)
    if ctx.summary.blocks and ctx.depth is not None and ctx.depth < block_depth:
        _coarse(ctx, g, ctx.depth)
    elif ctx.summary.blocks and ctx.depth == block_depth:
        _block_nodes(ctx, g)
    else:
        _full(ctx, g)
    return g


def _start(g: graphviz.Digraph, ctx: Context) -> tuple[str, Shape]:
    add_node(g, "input", lines("input", hwc(ctx.summary.input_shape)), "io")
    return "input", ctx.summary.input_shape


def _finish(g: graphviz.Digraph, ctx: Context, prev: str, shape: Shape, kinds: set[str],
            scale: ColorScale | None, notes: Sequence[str] = ()) -> None:
    add_node(g, "output", lines("output", f"{shape[-1]} classes"), "io")
    add_edge(g, prev, "output", shape, weight="4")
    skips = sorted({b.shortcut for b in ctx.summary.blocks} - {ShortcutKind.NONE})
    legend(g, kinds=sorted(kinds | {"io"}), skips=skips, scale=scale, notes=notes)


def _layer_node(ctx: Context, g: graphviz.Digraph, units_src: Sequence[LayerRecord], prev: str,
                shape: Shape, scale: ColorScale | None) -> tuple[str, Shape, str]:
    unit = group_layers(units_src, str, None)[0] if len(units_src) == 1 else None
    label = unit.label if unit else lines(units_src[0].name, f"{len(units_src)} layers")
    kind = unit_kind(units_src)
    nid = units_src[0].name if unit else units_src[0].name.split(".")[0]
    add_node(g, nid, label, kind, ctx.metrics.value([[lr.name for lr in units_src]]), scale)
    add_edge(g, prev, nid, shape, weight="4")
    return nid, units_src[-1].output_shape, kind


def _coarse(ctx: Context, g: graphviz.Digraph, depth: int) -> None:
    """Nodes are module-name prefixes of length ``depth`` (stages at depth 1)."""
    groups: list[tuple[str, list[LayerRecord]]] = []
    for lr in ctx.summary.layers:
        key = ".".join(lr.name.split(".")[:depth])
        if groups and groups[-1][0] == key:
            groups[-1][1].append(lr)
        else:
            groups.append((key, [lr]))
    scale = ctx.scale_for([ctx.metrics.value([[lr.name for lr in ls]]) for _, ls in groups])
    prev, shape = _start(g, ctx)
    kinds: set[str] = set()
    for key, ls in groups:
        blocks = {lr.block for lr in ls if lr.block}
        if blocks:
            recs = [b for b in ctx.summary.blocks if b.name in blocks]
            label = lines(f"{key} ({ls[0].stage})", blocks_text(recs))
            add_node(g, key, label, "conv", ctx.metrics.value([[lr.name for lr in ls]]), scale)
            add_edge(g, prev, key, shape, weight="4")
            prev, shape = key, ls[-1].output_shape
            kinds.add("conv")
        else:
            prev, shape, kind = _layer_node(ctx, g, ls, prev, shape, scale)
            kinds.add(kind)
    _finish(g, ctx, prev, shape, kinds, scale)


def _block_nodes(ctx: Context, g: graphviz.Digraph) -> None:
    """One node per block (runs folded), outlined in the style of its skip connection."""
    items = _items(ctx)
    scale = ctx.scale_for([
        ctx.metrics.block_value([b.name for b in it]) if isinstance(it, list)
        else ctx.metrics.value([[it.name]]) for it in items
    ])
    prev, shape = _start(g, ctx)
    kinds: set[str] = set()
    for it in items:
        if isinstance(it, LayerRecord):
            prev, shape, kind = _layer_node(ctx, g, [it], prev, shape, scale)
            kinds.add(kind)
            continue
        nid = it[0].name
        add_node(g, nid, _block_label(it), "conv", ctx.metrics.block_value([b.name for b in it]), scale,
                 **_skip_border(it[0].shortcut))
        add_edge(g, prev, nid, shape, weight="4")
        prev, shape = nid, it[-1].output_shape
        kinds.add("conv")
    _finish(g, ctx, prev, shape, kinds, scale, notes=["block outline = its skip connection"])


def _full(ctx: Context, g: graphviz.Digraph) -> None:
    """Every layer (or layer group at ``depth``), each block in a cluster with its skip path."""
    items = _items(ctx)
    unit_depth = ctx.depth
    lays = {it[0].name: layout_block(it[0], ctx.by_block[it[0].name], unit_depth)
            for it in items if isinstance(it, list)}
    values: list[float | None] = []
    for it in items:
        if isinstance(it, LayerRecord):
            values.append(ctx.metrics.value([[it.name]]))
        else:
            values.extend(ctx.metrics.value([[b.absolute(r) for r in u.rels] for b in it])
                          for u in lays[it[0].name].units)
    scale = ctx.scale_for(values)
    prev, shape = _start(g, ctx)
    kinds: set[str] = set()
    folded = 0
    for it in items:
        if isinstance(it, LayerRecord):
            prev, shape, kind = _layer_node(ctx, g, [it], prev, shape, scale)
            kinds.add(kind)
            continue
        lay = lays[it[0].name]
        b = it[0]
        folded += len(it) - 1
        with g.subgraph(name=f"cluster_{b.name}") as sub:
            skip = "no skip" if b.shortcut == ShortcutKind.NONE else f"{b.shortcut} shortcut"
            sub.attr(label=lines(run_name(it), f"{b.kind}, {skip}"), style="rounded",
                     color=theme.SKIP_STYLES.get(b.shortcut, {}).get("color", "#888888"),
                     fontsize=str(theme.FONT_SIZE))
            prev, shape = draw_block(sub, lay, prev, shape, f"{b.name}.", ctx.metrics, scale, it)
        kinds |= {u.kind for u in lay.units}
    notes = [f"{folded} repeated blocks folded (xN: drawn once)"] if folded else []
    _finish(g, ctx, prev, shape, kinds, scale, notes)
