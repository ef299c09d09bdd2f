"""Shared Graphviz building blocks: graph defaults, node and edge styles, shape labels, legends.

Every view goes through these helpers so that one layer kind, one skip kind and one tensor shape
look the same in every picture (and the same as in the Plotly figures, through
:mod:`resviz.render.theme`). Output must be byte-for-byte deterministic for the golden-file tests:
nothing here depends on dict ordering of unordered sources, time, or float repr noise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import graphviz

from resviz.records import Shape, ShortcutKind, Summary, shape_str
from resviz.render import theme
from resviz.render.diagrams.fitted import FittedDigraph
from resviz.render.format import human

if TYPE_CHECKING:
    from resviz.render.diagrams.metrics import ColorScale

# Extra theme entries the diagrams need; kept here so theme.py stays the shared vocabulary.
EDGE_COLOR = "#444444"
FOLD_COLOR = "#666666"
NA_FILL = "#F7F7F7"


def hwc(shape: Shape) -> str:
    """Feature-map shape as the papers print it: ``(1, 64, 112, 112)`` -> ``112x112x64``.

    The batch dimension is dropped; a flat ``(1, 1000)`` becomes ``1000``.
    """
    dims = shape[1:] if len(shape) > 1 else shape
    if len(dims) == 3:
        c, h, w = dims
        return f"{h}x{w}x{c}"
    return shape_str(dims)


def lines(*parts: str) -> str:
    """Join label lines with Graphviz's centred line break escape."""
    return "\\n".join(p for p in parts if p)


def new_graph(name: str, summary: Summary, view: str) -> graphviz.Digraph:
    """A Digraph with the theme's fonts and a title naming the model, view and input size."""
    g = FittedDigraph(name=name)
    title = lines(
        f"{summary.model} - {view}",
        f"input {shape_str(summary.input_shape)} - {human(summary.total_params)} params"
        f" - {human(summary.total_macs)} MACs",
    )
    g.attr(
        "graph", rankdir="TB", label=title, labelloc="t", fontname=theme.FONT,
        fontsize=str(theme.FONT_SIZE + 3), nodesep="0.25", ranksep="0.3", newrank="true",
    )
    g.attr("node", shape="box", style="rounded,filled", fontname=theme.FONT,
           fontsize=str(theme.FONT_SIZE), fillcolor=theme.LAYER_COLORS["other"], color="#333333")
    g.attr("edge", fontname=theme.FONT, fontsize=str(theme.FONT_SIZE - 2), color=EDGE_COLOR,
           fontcolor="#333333", arrowsize="0.7")
    return g


def kind_fill(kind: str) -> str:
    return theme.LAYER_COLORS.get(kind, theme.LAYER_COLORS["other"])


def fill_for(kind: str, value: float | None, scale: ColorScale | None) -> str:
    """Fill colour of a node: its layer kind, or its metric value when colouring by a metric."""
    if scale is None:
        return kind_fill(kind)
    return scale.color(value)


def add_node(
    g: graphviz.Digraph, node_id: str, label: str, kind: str = "other",
    value: float | None = None, scale: ColorScale | None = None, **attrs: str,
) -> None:
    """A layer-like node; ``add`` joins are drawn as circles so the summation point stands out."""
    style: dict[str, str] = {"fillcolor": fill_for(kind, value, scale)}
    if kind == "add":
        style.update(shape="circle", width="0.35", fixedsize="true", fontsize=str(theme.FONT_SIZE + 3))
    elif kind == "io":
        style.update(shape="box", style="filled")
    style.update(attrs)
    g.node(safe_id(node_id), label, **style)


def safe_id(name: str) -> str:
    """A node id Graphviz reads whole: an edge endpoint ``a:b`` means node ``a``, port ``b``, and a
    block found in the computation may be named ``blocks.0:1``."""
    return name.replace(":", "~")


def add_edge(g: graphviz.Digraph, src: str, dst: str, shape: Shape | None = None, **attrs: str) -> None:
    """A data edge labelled with the tensor shape it carries."""
    if shape is not None and "label" not in attrs:
        attrs["label"] = " " + hwc(shape)
    g.edge(safe_id(src), safe_id(dst), **attrs)


def skip_edge(g: graphviz.Digraph, src: str, dst: str, shortcut: ShortcutKind, shape: Shape | None = None,
              **attrs: str) -> None:
    """A skip edge in the theme's style for its kind (identity, projection, zero-pad)."""
    style = dict(theme.SKIP_STYLES.get(shortcut, theme.SKIP_STYLES[ShortcutKind.IDENTITY]))
    style.update(attrs)
    add_edge(g, src, dst, shape, **style)


def legend(
    g: graphviz.Digraph, kinds: Iterable[str] = (), skips: Iterable[ShortcutKind] = (),
    scale: ColorScale | None = None, notes: Sequence[str] = (),
) -> None:
    """A legend cluster: layer kinds (or the metric scale) and the skip-edge styles in use.

    Skip styles are shown as real edges between invisible points, so the legend reproduces
    exactly what the picture uses (dash pattern and pen width, not only colour).
    """
    kinds = [k for k in theme.LAYER_COLORS if k in set(kinds)]
    skips = [s for s in theme.SKIP_STYLES if s in set(skips)]
    if not kinds and not skips and scale is None and not notes:
        return
    with g.subgraph(name="cluster_legend") as lg:
        lg.attr(label="legend", style="rounded,dashed", color="#999999", fontsize=str(theme.FONT_SIZE))
        rows: list[str] = []
        if scale is not None:
            rows.append(f'<TR><TD COLSPAN="2"><B>{_html(scale.title)}</B></TD></TR>')
            for color, text in scale.legend_rows():
                rows.append(f'<TR><TD BGCOLOR="{color}" WIDTH="18"> </TD><TD ALIGN="LEFT">{_html(text)}</TD></TR>')
        else:
            for k in kinds:
                rows.append(
                    f'<TR><TD BGCOLOR="{kind_fill(k)}" WIDTH="18"> </TD><TD ALIGN="LEFT">{_KIND_NAMES[k]}</TD></TR>'
                )
        for note in notes:
            rows.append(f'<TR><TD COLSPAN="2" ALIGN="LEFT">{_html(note)}</TD></TR>')
        if rows:
            table = '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="2" CELLPADDING="3">' + "".join(rows)
            lg.node("legend_table", table + "</TABLE>>", shape="plaintext", style="", fillcolor="white")
        for s in skips:
            a, b = f"legend_{s}_a", f"legend_{s}_b"
            with lg.subgraph(name=f"legend_{s}") as row:
                row.attr(rank="same")
                row.node(a, "", shape="point", width="0.05", style="invis")
                row.node(b, "", shape="point", width="0.05", style="invis")
                style = dict(theme.SKIP_STYLES[s])
                row.edge(a, b, label=f"{s} skip", minlen="2", **style)


_KIND_NAMES = {
    "conv": "convolution", "norm": "batch norm", "act": "ReLU", "pool": "pooling",
    "linear": "fully connected", "add": "addition", "io": "input / output", "other": "other",
}


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
