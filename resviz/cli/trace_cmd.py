"""``resviz trace``: one measured forward and backward pass, shown per block, saved as JSON or CSV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from resviz.cli import app
from resviz.cli.common import (
    InputOpt,
    ModelArg,
    PlainOpt,
    SetOpt,
    console,
    echo,
    resolve_cli_spec,
    user_errors,
    with_weights,
)
from resviz.errors import ResvizError, clip_path
from resviz.files import check_writable, write_atomic


@app.command("trace")
@user_errors
def trace_cmd(
    model: ModelArg,
    input: InputOpt = "8x3x64x64",
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="fp32 or bf16 (autocast); fp16 on CUDA.")] = "fp32",
    seed: Annotated[int, typer.Option("--seed", help="Seeds weights, inputs and labels.")] = 0,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the trace to FILE.json or FILE.csv.")
    ] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Also print per-layer output statistics.")] = False,
    no_backward: Annotated[bool, typer.Option("--no-backward", help="Forward only: no gradients.")] = False,
    plain: PlainOpt = False,
    sets: SetOpt = None,
    weights: Annotated[
        str | None, typer.Option("--weights", "-w", help="Load a checkpoint (.pth/.pt/.safetensors) first.")
    ] = None,
) -> None:
    """Trace activations and skip-versus-main gradients of one batch (random inputs and labels)."""
    if output is not None and output.suffix.lower() not in (".json", ".csv"):
        raise ResvizError(f"cannot tell the format of {clip_path(output)}: use a .json or .csv file name")
    if output is not None:
        check_writable(output)  # before the trace, not after it
    spec = with_weights(resolve_cli_spec(model, plain, sets), weights, device, seed)
    from resviz.api import trace  # heavy imports inside the command keep ``resviz --help`` fast
    from resviz.render.trace_view import block_table, layer_table, trace_csv, trace_json

    result = trace(spec, input_size=input, device=device, dtype=dtype, seed=seed, backward=not no_backward)
    if output is not None:
        text = trace_csv(result) if output.suffix.lower() == ".csv" else json.dumps(trace_json(result))
        write_atomic(output, text)
    out = console()  # wide when piped, so the per-layer table is not cut to 80 columns
    if layers:
        out.print(layer_table(result))
    out.print(block_table(result))
    for note in result.notes:
        out.print(f"[dim]note:[/dim] {note}", highlight=False)
    if output is not None:
        echo(f"wrote {output}")
