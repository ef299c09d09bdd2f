"""A diagram that needs no PyTorch, as DOT text.

:func:`sketch_dot` draws the stage structure read from the spec alone. When the first page of a
server must import PyTorch itself (a server started without ``st.App``'s warm-up, see
:mod:`resviz.dashboard.warmup`), the Architecture page shows it until the summary is ready, so the
page has a picture at once and the browser loads its Graphviz renderer during the import.
"""

from __future__ import annotations

from resviz.render import theme
from resviz.spec import BlockKind, ResNetSpec, Stem

#: The graph name of :func:`sketch_dot`; readiness checks tell the sketch from the real diagram by it.
SKETCH_NAME = "resviz_sketch"


def _quote(text: str) -> str:
    """A DOT string; backslashes are kept, so ``\\n`` in ``text`` is Graphviz's line break."""
    return '"' + text.replace('"', '\\"') + '"'


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
