"""A minimal overview diagram built from a Summary, for builds without :mod:`resviz.render.diagrams`.

The Architecture page must always show a picture of the network; when the full diagram renderer
cannot be imported, this draws the stem, one box per stage (blocks, output shape, shortcut kinds)
and the head, in the shared theme, as DOT text that the browser lays out.
"""

from __future__ import annotations

from resviz.render import theme
from resviz.render.tables import human
from resviz.tracing.records import Summary, shape_str


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def overview_dot(summary: Summary) -> str:
    """DOT source of a top-to-bottom chain: input -> stages (with their blocks) -> output."""
    lines = [
        "digraph resviz {",
        "  rankdir=TB;",
        f'  node [shape=box, style="rounded,filled", fontname={_quote(theme.FONT)}, '
        f"fontsize={theme.FONT_SIZE}];",
        f"  edge [fontname={_quote(theme.FONT)}, fontsize={theme.FONT_SIZE - 2}];",
        f"  input [label={_quote('input ' + shape_str(summary.input_shape))}, "
        f"fillcolor={_quote(theme.LAYER_COLORS['io'])}];",
    ]
    prev = "input"
    for i, stage in enumerate(summary.stages):
        blocks = [b for b in summary.blocks if b.stage == stage.name]
        kinds = sorted({b.shortcut for b in blocks})
        label = f"{stage.name}\\n"
        if blocks:
            label += f"{len(blocks)} x {blocks[0].kind} block\\nshortcuts: {', '.join(kinds)}\\n"
        label += f"out {shape_str(stage.output_shape[1:])}\\n{human(stage.params)} params, {human(stage.macs)} MACs"
        kind = "conv" if blocks or stage.name == "conv1" else "linear"
        node = f"s{i}"
        lines.append(
            f"  {node} [label={_quote(label)}, fillcolor={_quote(theme.LAYER_COLORS[kind])}];"
        )
        lines.append(f"  {prev} -> {node};")
        prev = node
    out = "output " + shape_str(summary.layers[-1].output_shape) if summary.layers else "output"
    lines.append(f"  output [label={_quote(out)}, fillcolor={_quote(theme.LAYER_COLORS['io'])}];")
    lines.append(f"  {prev} -> output;")
    lines.append("}")
    return "\n".join(lines)
