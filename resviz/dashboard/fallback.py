"""Diagrams that need neither PyTorch nor :mod:`resviz.render.diagrams`, as DOT text.

* :func:`overview_dot`: the Architecture page must always show a picture of the network; when the
  full diagram renderer cannot be imported, this draws the stem, one box per stage (blocks, output
  shape, shortcut kinds) and the head from the Summary, in the shared theme.
* :func:`sketch_dot`: the stage structure read from the spec alone. The first page of a fresh
  server shows it while PyTorch is imported for the summary (about 2 s on two cores), so the page
  has a picture at once and the browser's Graphviz renderer is loaded before the real diagram.
"""

from __future__ import annotations

from resviz.render import theme
from resviz.render.tables import human
from resviz.spec import BlockKind, ResNetSpec, Stem
from resviz.tracing.records import Summary, shape_str

#: The graph name of :func:`sketch_dot`; readiness checks tell the sketch from the real diagram by it.
SKETCH_NAME = "resviz_sketch"


def _quote(text: str) -> str:
    """A DOT string; backslashes are kept, so ``\\n`` in ``text`` is Graphviz's line break."""
    return '"' + text.replace('"', '\\"') + '"'


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


def sketch_dot(spec: ResNetSpec) -> str:
    """DOT source of input -> stem -> one box per stage (blocks, kind, width) -> classifier.

    Everything here is read from the spec: no shapes or counts, which need the static analysis.
    """
    kind = "bottleneck" if spec.block is BlockKind.BOTTLENECK else "basic"
    stem = "7x7 conv, max-pool" if spec.stem is Stem.IMAGENET else "3x3 conv"
    lines = [
        f"digraph {SKETCH_NAME} {{",
        "  rankdir=TB;",
        f'  node [shape=box, style="rounded,filled", fontname={_quote(theme.FONT)}, '
        f"fontsize={theme.FONT_SIZE}];",
        f"  input [label={_quote(f'input, {spec.in_channels} channels')}, "
        f"fillcolor={_quote(theme.LAYER_COLORS['io'])}];",
        f"  stem [label={_quote(f'stem: {stem}, {spec.stem_width} channels')}, "
        f"fillcolor={_quote(theme.LAYER_COLORS['conv'])}];",
        "  input -> stem;",
    ]
    prev = "stem"
    for i, (blocks, width) in enumerate(zip(spec.layers, spec.stage_out_channels(), strict=True)):
        label = f"stage {i + 1}\\n{blocks} x {kind} block\\n{width} channels, shortcut {spec.shortcut.value}"
        lines.append(f"  s{i} [label={_quote(label)}, fillcolor={_quote(theme.LAYER_COLORS['conv'])}];")
        lines.append(f"  {prev} -> s{i};")
        prev = f"s{i}"
    head = f"pool, fc {spec.num_classes}"
    lines += [f"  head [label={_quote(head)}, fillcolor={_quote(theme.LAYER_COLORS['linear'])}];",
              f"  {prev} -> head;", "}"]
    return "\n".join(lines)
