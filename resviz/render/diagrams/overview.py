"""Whole-network views: ``overview``, ``stages`` and ``dimensions``.

They follow He et al. 2015, Table 1: a stem (conv1, and the max-pool that opens conv2_x), residual
stages conv2_x ... conv5_x, then global average pooling and the classifier. All names, counts and
shapes come from the Summary, so CIFAR nets (no max-pool, three stages) and pre-activation nets
(a final BN-ReLU before pooling) draw correctly without special cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from resviz.records import BlockRecord, LayerRecord, Shape, ShortcutKind
from resviz.render import theme
from resviz.render.diagrams._style import add_edge, add_node, hwc, legend, lines, new_graph
from resviz.render.diagrams.blockgraph import block_runs, layer_text, run_name, unit_kind
from resviz.render.diagrams.context import Context

if TYPE_CHECKING:
    import graphviz

FOLD_MIN = 3
"""Runs of at least this many identical consecutive blocks are drawn once with a count."""


@dataclass(frozen=True)
class Segment:
    """A stretch of the network drawn as one node (stem, pooling, head) or one stage of blocks."""

    key: str
    layers: tuple[LayerRecord, ...]
    stage: str
    is_stage: bool

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].output_shape


def segments(ctx: Context) -> list[Segment]:
    """Split the layers into stem/head nodes and stages of blocks, in execution order.

    Outside blocks, a BatchNorm or ReLU joins the node before it (conv1 + BN + ReLU is one stem
    node); pooling and linear layers get their own nodes, as in the paper's figures.
    """
    out: list[tuple[str, list[LayerRecord], str, bool]] = []
    for lr in ctx.summary.layers:
        if lr.block:
            module = lr.block.rsplit(".", 1)[0]
            if out and out[-1][3] and out[-1][0] == module:
                out[-1][1].append(lr)
            else:
                out.append((module, [lr], lr.stage, True))
            continue
        kind = theme.layer_kind(lr.type)
        prev = out[-1] if out else None
        if prev and not prev[3] and prev[2] == lr.stage and kind in ("norm", "act") and \
                unit_kind(prev[1]) not in ("pool", "linear"):
            prev[1].append(lr)
        else:
            out.append((lr.name, [lr], lr.stage, False))
    return [Segment(k, tuple(ls), st, s) for k, ls, st, s in out]


def segment_label(ctx: Context, seg: Segment) -> str:
    if seg.is_stage:
        blocks = [b for b in ctx.summary.blocks if b.name.rsplit(".", 1)[0] == seg.key]
        return lines(f"{seg.stage} ({seg.key})", blocks_text(blocks))
    name = "stem" if seg.stage == "conv1" else seg.key
    if len(seg.layers) == 1:
        return lines(name, layer_text(seg.layers[0]))
    return lines(name, " + ".join(layer_text(lr) for lr in seg.layers))


def blocks_text(blocks: Sequence[BlockRecord]) -> str:
    """``3 x bottleneck`` and the shortcut mix, e.g. ``1 projection + 2 identity``."""
    kinds = sorted({b.kind for b in blocks})
    counts: dict[ShortcutKind, int] = {}
    for b in blocks:
        counts[b.shortcut] = counts.get(b.shortcut, 0) + 1
    skips = " + ".join(f"{n} {s}" for s, n in counts.items()) if ShortcutKind.NONE not in counts else "no skips"
    return lines(f"{len(blocks)} x {'/'.join(kinds)}", skips)


def _value(ctx: Context, layers: Sequence[LayerRecord]) -> float | None:
    return ctx.metrics.value([[lr.name for lr in layers]])


def _io(ctx: Context, g: graphviz.Digraph) -> None:
    add_node(g, "input", lines("input", hwc(ctx.summary.input_shape)), "io")


def overview(ctx: Context) -> graphviz.Digraph:
    """Input, stem, max-pool, the residual stages, pooling, classifier, output classes."""
    g = new_graph("overview", ctx.summary, "overview")
    segs = segments(ctx)
    scale = ctx.scale_for([_value(ctx, s.layers) for s in segs])
    _io(ctx, g)
    prev, shape = "input", ctx.summary.input_shape
    kinds = {"io"}
    first = next((i for i, s in enumerate(segs) if s.is_stage), len(segs))
    last = max((i for i, s in enumerate(segs) if s.is_stage), default=first - 1)
    for i, seg in enumerate(segs):
        nid = f"seg/{seg.key}"
        kind = "conv" if seg.is_stage else unit_kind(seg.layers)
        kinds.add(kind)
        if i == first:
            with g.subgraph(name="cluster_stages") as sub:
                sub.attr(label=f"residual stages ({len(ctx.summary.blocks)} blocks)", style="rounded",
                         color="#888888")
                for st in segs[first:last + 1]:
                    add_node(sub, f"seg/{st.key}", segment_label(ctx, st), "conv", _value(ctx, st.layers), scale)
        elif not seg.is_stage:
            add_node(g, nid, segment_label(ctx, seg), kind, _value(ctx, seg.layers), scale)
        add_edge(g, prev, nid, shape, weight="4")
        prev, shape = nid, seg.output_shape
    add_node(g, "output", lines("output", f"{shape[-1]} classes"), "io")
    add_edge(g, prev, "output", shape, weight="4")
    skips = sorted({b.shortcut for b in ctx.summary.blocks} - {ShortcutKind.NONE})
    legend(g, kinds=sorted(kinds), scale=scale,
           notes=[f"skip connections: {', '.join(skips) or 'none (plain network)'}"])
    return g


def stages(ctx: Context) -> graphviz.Digraph:
    """Each stage as a cluster of its blocks (kind and shortcut); long runs folded with a count."""
    g = new_graph("stages", ctx.summary, "stages")
    segs = segments(ctx)
    folded = folded_runs(ctx)
    scale = ctx.scale_for(
        [_value(ctx, s.layers) for s in segs if not s.is_stage]
        + [ctx.metrics.block_value([b.name for b in r]) for r in folded]
    )
    _io(ctx, g)
    prev, shape = "input", ctx.summary.input_shape
    kinds = {"io"}
    for seg in segs:
        if not seg.is_stage:
            nid = f"seg/{seg.key}"
            kind = unit_kind(seg.layers)
            kinds.add(kind)
            add_node(g, nid, segment_label(ctx, seg), kind, _value(ctx, seg.layers), scale)
            add_edge(g, prev, nid, shape, weight="4")
            prev, shape = nid, seg.output_shape
            continue
        blocks = [b for b in ctx.summary.blocks if b.name.rsplit(".", 1)[0] == seg.key]
        st = next(s for s in ctx.summary.stages if s.name == seg.stage)
        with g.subgraph(name=f"cluster_{seg.key}") as sub:
            title = f"{seg.stage} ({seg.key}): {len(blocks)} {'/'.join(sorted({b.kind for b in blocks}))} blocks"
            sub.attr(label=lines(title, f"out {hwc(st.output_shape)}, receptive field {st.receptive_field}"),
                     style="rounded", color="#888888")
            for run in (r for r in folded if r[0].name.rsplit(".", 1)[0] == seg.key):
                nid = f"run/{run[0].name}"
                add_node(sub, nid, _block_label(run), "conv",
                         ctx.metrics.block_value([b.name for b in run]), scale,
                         **_skip_border(run[0].shortcut))
                add_edge(g, prev, nid, shape, weight="4")
                prev, shape = nid, run[-1].output_shape
        kinds.add("conv")
    add_node(g, "output", lines("output", f"{shape[-1]} classes"), "io")
    add_edge(g, prev, "output", shape, weight="4")
    legend(g, kinds=sorted(kinds), skips=sorted({b.shortcut for b in ctx.summary.blocks} - {ShortcutKind.NONE}),
           scale=scale, notes=["block outline = its skip connection"])
    return g


def folded_runs(ctx: Context) -> list[list[BlockRecord]]:
    """The blocks in order, each run of at least :data:`FOLD_MIN` identical ones as one item."""
    return [r for run in block_runs(ctx.summary) for r in ([run] if len(run) >= FOLD_MIN else [[b] for b in run])]


def _block_label(run: Sequence[BlockRecord]) -> str:
    b = run[0]
    skip = "no skip" if b.shortcut == ShortcutKind.NONE else f"{b.shortcut} skip"
    return lines(run_name(run), b.kind, skip)


def _skip_border(shortcut: ShortcutKind) -> dict[str, str]:
    """Block nodes outlined in their skip edge's colour and dash pattern."""
    style = theme.SKIP_STYLES.get(shortcut)
    if style is None:
        return {}
    dashed = ",dashed" if style["style"] == "dashed" else ""
    return {"color": style["color"], "penwidth": style["penwidth"], "style": f"rounded,filled{dashed}"}


def dimensions(ctx: Context) -> graphviz.Digraph:
    """The feature-map shape after the stem, each stage, global pooling and the classifier."""
    g = new_graph("dimensions", ctx.summary, "dimensions")
    head = [lr for lr in ctx.summary.layers if lr.stage == "head" and not lr.block
            and theme.layer_kind(lr.type) in ("pool", "linear")]
    body = [s for s in ctx.summary.stages if s.name != "head"]
    values = [_value(ctx, ctx.stage_layers(s.name)) for s in body] + [_value(ctx, [lr]) for lr in head]
    scale = ctx.scale_for(values)
    _io(ctx, g)
    prev, shape = "input", ctx.summary.input_shape
    for st in body:
        nid = f"stage/{st.name}"
        what = "stem" if st.num_blocks == 0 else f"{st.num_blocks} blocks"
        label = lines(f"{st.name}: {hwc(st.output_shape)}", what,
                      f"receptive field {st.receptive_field}, stride {st.jump}")
        add_node(g, nid, label, "conv", _value(ctx, ctx.stage_layers(st.name)), scale)
        add_edge(g, prev, nid, shape, weight="4")
        prev, shape = nid, st.output_shape
    for lr in head:
        nid = f"head/{lr.name}"
        name = "global pool" if "adaptive" in lr.type.lower() else lr.name
        add_node(g, nid, lines(f"{name}: {hwc(lr.output_shape)}", layer_text(lr)),
                 theme.layer_kind(lr.type), _value(ctx, [lr]), scale)
        add_edge(g, prev, nid, shape, weight="4")
        prev, shape = nid, lr.output_shape
    legend(g, kinds=["io", "conv", "pool", "linear"], scale=scale,
           notes=["shapes are H x W x C after each stage (batch dropped)"])
    return g
