"""``resviz diagram``: draw one view of a model with Graphviz and write svg, png, pdf or dot.

The picture is rendered to bytes first and written atomically, so a failure (bad view, missing
Graphviz, unwritable folder) never leaves a partial file. Heavy imports (torch, graphviz) happen
inside the command, so ``resviz --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from resviz.cli import app
from resviz.cli.common import (
    InputOpt,
    ModelArg,
    PlainOpt,
    SetOpt,
    echo,
    resolve_cli_spec,
    user_errors,
)
from resviz.errors import ResvizError, clip_path, quote
from resviz.files import check_writable, write_atomic
from resviz.limits import MAX_DEPTH

FORMATS = ("svg", "png", "pdf", "dot")
INSTALL_HINT = "install Graphviz (apt-get install graphviz, brew install graphviz or conda install graphviz)"


def output_format(path: Path) -> str:
    """The format named by the output file's suffix."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "gv":
        return "dot"
    if fmt not in FORMATS:
        shown = path.suffix or "no suffix"
        raise ResvizError(f"unknown output format {quote(shown)} for {clip_path(path)}: "
                          f"use one of .{', .'.join(FORMATS)}")
    return fmt


def run_trace(spec: Any, input_size: str | None) -> Any:
    """Measure activations and branch gradients with the tracer, on the CPU, seed 0."""
    from resviz.api import trace

    return trace(spec, input_size=input_size, seed=0, device="cpu")


def render(graph: Any, fmt: str, out: Path) -> bytes | str:
    """DOT source or bytes from ``dot``; with no ``dot`` installed, save the source and say so."""
    if fmt == "dot":
        return str(graph.source)
    import graphviz

    from resviz.render.diagrams import dot_error

    try:
        return bytes(graph.pipe(format=fmt))
    except graphviz.ExecutableNotFound:
        fallback = out.with_suffix(".dot")
        write_atomic(fallback, graph.source)
        raise ResvizError(f"Graphviz `dot` was not found: {INSTALL_HINT}; wrote the DOT source to "
                          f"{clip_path(fallback)}") from None
    except graphviz.CalledProcessError as exc:
        raise ResvizError(f"dot failed to render {fmt}: {dot_error(exc)}") from None


@app.command("diagram")
@user_errors
def diagram_cmd(
    model: ModelArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file; format from the suffix: "
                                                               ".svg, .png, .pdf or .dot.")],
    view: Annotated[str, typer.Option("--view", "-v", help="overview, basic-block, bottleneck, stages, "
                                                          "dimensions, skip-types, gradient-flow, layers.")]
    = "overview",
    input: InputOpt = None,
    depth: Annotated[int | None, typer.Option("--depth", "-d", min=1, max=MAX_DEPTH,
                                              help="layers view: 1 = stages, 2 = blocks, 3+ = layers.")] = None,
    color_by: Annotated[str | None, typer.Option("--color-by", "-c",
                                                 help="macs, params, std or grad-ratio (the last two trace "
                                                      "the model on the CPU).")] = None,
    block: Annotated[str | None, typer.Option("--block", help="Block to draw in block views, e.g. layer2.0.")]
    = None,
    plain: PlainOpt = False,
    sets: SetOpt = None,
) -> None:
    """Draw a Graphviz diagram of a model: its overview, blocks, stages, shapes, skips or gradient flow."""
    from resviz.render.diagrams import check_view, color_by_key, needs_trace

    key = check_view(view)
    fmt = output_format(output)
    metric = color_by_key(color_by)
    check_writable(output)

    from resviz.api import static_summary
    from resviz.render.diagrams import check_residual, draw

    spec = resolve_cli_spec(model, plain, sets)
    summary = static_summary(spec, input)
    if key.needs_blocks:
        check_residual(summary, key)  # before a trace, which costs a real pass
    trace = run_trace(spec, input) if needs_trace(key, metric) else None
    graph = draw(summary, view=key, depth=depth, color_by=metric, trace=trace, block=block)
    data = render(graph, fmt, output)
    write_atomic(output, data)
    echo(f"wrote {output} ({key} view of {summary.model}, {len(data):,} bytes)")
