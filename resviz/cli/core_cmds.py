"""Static commands: ``resviz list``, ``resviz summary``, ``resviz flops``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from resviz.cli import app
from resviz.cli.common import (
    FormatOpt,
    InputOpt,
    ModelArg,
    PlainOpt,
    SetOpt,
    check_format,
    console,
    echo,
    resolve_cli_spec,
    user_errors,
)
from resviz.limits import MAX_DEPTH


@app.command("list")
@user_errors
def list_cmd(
    fmt: FormatOpt = "table",
    plain: Annotated[bool, typer.Option("--plain", help="Also list every plain twin.")] = False,
) -> None:
    """List the presets with their parameters and MACs at their native resolution."""
    from resviz.api import catalog
    from resviz.render.format import human

    fmt = check_format(fmt)
    rows = catalog(include_plain=plain)
    if fmt == "json":
        echo(json.dumps([r._asdict() for r in rows], indent=2))
        return
    if fmt == "csv":
        echo("name,family,depth,params,macs,input")
        for r in rows:
            echo(f"{r.name},{r.family},{r.depth},{r.params},{r.macs},{r.input}")
        return
    from rich.table import Table

    table = Table(title="resviz presets")
    for col in ("name", "family", "depth", "params", "MACs", "input"):
        table.add_column(col, justify="left" if col in ("name", "family") else "right")
    for r in rows:
        table.add_row(r.name, r.family, str(r.depth), human(r.params), human(r.macs), r.input)
    console().print(table)


@app.command("summary")
@user_errors
def summary_cmd(
    model: ModelArg,
    input: InputOpt = None,
    fmt: FormatOpt = "table",
    depth: Annotated[
        int | None, typer.Option("--depth", "-d", min=1, max=MAX_DEPTH, help="Fold layers to this depth.")
    ] = None,
    plain: PlainOpt = False,
    sets: SetOpt = None,
    weights: Annotated[
        str | None,
        typer.Option("--weights", "-w", help="Check a checkpoint (.pth/.pt/.safetensors) against the model."),
    ] = None,
) -> None:
    """Shapes, parameters, MACs and memory of every layer (computed on the meta device)."""
    import dataclasses

    from resviz.api import summarize
    from resviz.render.tables import layers_csv, stage_table, summary_json, summary_table

    fmt = check_format(fmt)
    spec = resolve_cli_spec(model, plain, sets)
    summary = summarize(spec, input_size=input)
    if weights is not None:
        from resviz.api import check_checkpoint

        count = check_checkpoint(spec, weights)  # keys and shapes, against a model without real weights
        note = f"checkpoint {weights}: all {count} tensors match {summary.model} (strict keys and shapes)"
        summary = dataclasses.replace(summary, notes=(*summary.notes, note))
    if fmt == "json":
        echo(json.dumps(summary_json(summary, depth)))
    elif fmt == "csv":
        echo(layers_csv(summary, depth))
    else:
        out = console()
        out.print(summary_table(summary, depth))
        out.print(stage_table(summary))
        for note in summary.notes:
            out.print(f"[dim]note:[/dim] {note}", highlight=False)


@app.command("flops")
@user_errors
def flops_cmd(
    model: ModelArg,
    input: InputOpt = None,
    reconcile: Annotated[
        bool, typer.Option("--reconcile", help="Compare with fvcore, torchinfo and FlopCounterMode.")
    ] = False,
    fmt: FormatOpt = "table",
    plain: PlainOpt = False,
    sets: SetOpt = None,
) -> None:
    """MACs and FLOPs (= 2 x MACs) per stage; --reconcile explains other counters per layer type."""
    from resviz.api import summarize
    from resviz.render.format import human
    from resviz.render.tables import stage_table

    fmt = check_format(fmt)
    spec = resolve_cli_spec(model, plain, sets)
    if not reconcile:
        summary = summarize(spec, input_size=input)
        if fmt == "json":
            echo(json.dumps({"model": summary.model, "input_shape": list(summary.input_shape),
                             "macs": summary.total_macs, "flops": summary.total_flops,
                             "elementwise": summary.total_elementwise,
                             "stages": [s.to_dict() for s in summary.stages]}))
            return
        if fmt == "csv":
            echo("stage,macs,elementwise")
            for s in summary.stages:
                echo(f"{s.name},{s.macs},{s.elementwise}")
            return
        out = console()
        out.print(stage_table(summary))
        out.print(f"MACs {human(summary.total_macs)}  FLOPs {human(summary.total_flops)}  "
                      f"elementwise {human(summary.total_elementwise)}", highlight=False)
        return
    from resviz.api import reconcile as run_reconcile
    from resviz.render.tables import reconcile_csv, reconcile_table

    result = run_reconcile(spec, input_size=input)
    if fmt == "json":
        echo(json.dumps(result.to_dict()))
    elif fmt == "csv":
        echo(reconcile_csv(result))
    else:
        console().print(reconcile_table(result))
