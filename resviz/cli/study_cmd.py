"""``resviz study KIND MODEL...``: one science study (signal, shatter, paths, lesion) and its report.

With ``-o`` the format follows the suffix: ``.html`` (the page, with a ``.json`` sidecar holding
every number; needs the ``reports`` extra) or ``.json``. Without ``-o`` the findings are printed
(``--format table``) or the JSON (``--format json``). Every file is rendered in memory first and
written atomically, and every path is checked before the study runs, so a bad path fails at once
and an interrupted run (Ctrl-C, exit 130) leaves no file behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from resviz.cli import app
from resviz.cli.common import check_format, echo, progress_bar, user_errors
from resviz.files import check_writable, write_atomic


def _outputs(output: Path) -> Any:
    """The report format named by ``output``'s suffix, with the JSON sidecar of an HTML page checked
    writable too, before any work."""
    from resviz.render.report import ReportFormat
    from resviz.render.report.study import check_study_html, study_format

    kind = study_format(output)
    if kind is ReportFormat.HTML:
        check_study_html()
        check_writable(output.with_suffix(".json"))
    check_writable(output)
    return kind


def _files(result: Any, output: Path, kind: Any) -> list[tuple[Path, str]]:
    from resviz.render.report import ReportFormat
    from resviz.render.report.study import render_study

    page = [(output, render_study(result, kind))]
    return page if kind is ReportFormat.JSON else [(output.with_suffix(".json"), result.to_json(indent=1)), *page]


def _print(result: Any, fmt: str) -> None:
    from resviz.render.report.study_html import study_findings

    if fmt == "json":
        echo(result.to_json(indent=1))
        return
    for line in (*study_findings(result), *result.notes):
        echo(f"- {line}")


@app.command("study")
@user_errors
def study_cmd(
    kind: Annotated[str, typer.Argument(help="signal, shatter, paths or lesion.")],
    models: Annotated[list[str], typer.Argument(help="Presets, spec files or MODEL@KEY=VALUE variants.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="study.html or study.json.")] = None,
    input: Annotated[str | None, typer.Option(
        "--input", "-i", help="NxCxHxW (signal, paths) or CxHxW (shatter, lesion).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for weights, inputs and samples.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    no_twin: Annotated[bool, typer.Option("--no-twin", help="Study the models alone, without twins.")] = False,
    weights: Annotated[str | None, typer.Option("--weights", help="Checkpoint of the one model given.")] = None,
    points: Annotated[int | None, typer.Option("--points", help="Points on the line (shatter).")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="Subsets per path length (paths).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Training steps before a lesion study.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json, when there is no -o.")] = "table",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run a science study on models and their plain twins: signal, shatter, paths or lesion."""
    from resviz.api import study, study_kind

    what = study_kind(kind)
    form = check_format(fmt, ("table", "json"))
    report = _outputs(output) if output is not None else None
    options = {k: v for k, v in (("points", points), ("samples", samples)) if v is not None}
    with progress_bar(quiet) as progress:
        result = study(what, list(models), input_size=input, seed=seed,
                       device=device, twin=not no_twin, weights=weights, steps=steps, progress=progress, **options)
    if output is None:
        _print(result, form)
        return
    files = _files(result, output, report)
    for path, text in files:
        write_atomic(path, text)
    echo("wrote " + ", ".join(str(p) for p, _ in files))

