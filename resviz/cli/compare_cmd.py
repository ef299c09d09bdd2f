"""``resviz compare``: the gradient-flow comparison report of two or more models.

The output format follows the suffix of ``-o``: ``.html`` (with a ``.json`` sidecar beside it; needs
the ``reports`` extra), ``.md`` (also with the sidecar) or ``.json``. Every file is rendered in memory first and written
atomically, so a failed or interrupted run never leaves a partial report. Ctrl-C during training
stops the loop and still writes a report of the steps done (exit code 130).

``--recipe paper`` starts from He et al. 2015's CIFAR recipe adapted to the digits (300 steps,
batch 64, 3x16x16, lr 0.1 after a warm-up at 0.01, a held-out split): options given on the
command line override its values, and the report lists them.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from resviz.cli import app
from resviz.cli.common import echo, progress_bar, user_errors
from resviz.files import check_writable, write_atomic
from resviz.records import TrainingStatus


def output_kind(path: Path) -> Any:
    """The report format named by the suffix; every file it implies must be writable.

    Checked before the comparison runs, so a bad path, or an HTML report without Plotly (the
    ``reports`` extra), fails at once instead of after training.
    """
    from resviz.render.report import ReportFormat, check_html, report_format

    kind = report_format(path)
    if kind is ReportFormat.HTML:
        check_html()
    check_writable(path)
    if kind is not ReportFormat.JSON:
        check_writable(path.with_suffix(".json"))  # the sidecar
    return kind


@app.command("compare")
@user_errors
def compare_cmd(
    models: Annotated[list[str], typer.Argument(
        help="Two or more presets, spec files or pkg.mod:factory models, e.g. resnet56 plain56.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="report.html, report.md or report.json.")],
    steps: Annotated[int | None, typer.Option(
        "--steps", help="Training steps after the init analysis (default 0; paper recipe 300).")] = None,
    batch: Annotated[int | None, typer.Option(
        "--batch", "-b", help="Images per batch (default 8; paper recipe 64).")] = None,
    input: Annotated[str | None, typer.Option(
        "--input", "-i", help="Image size CxHxW (default 3x32x32; paper recipe 3x16x16).")] = None,
    data: Annotated[str | None, typer.Option(
        "--data", help="synthetic (default), digits (paper recipe), or an ImageFolder directory.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for weights and batches (the first seed).")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    lr: Annotated[float | None, typer.Option(
        "--lr", help="SGD learning rate (default 0.05; paper recipe 0.1).")] = None,
    every: Annotated[int | None, typer.Option(
        "--every", help="Record block statistics every k-th step (default 1; paper recipe 10).")] = None,
    recipe: Annotated[str, typer.Option(
        "--recipe", help="custom (default) or paper: He et al. 2015's CIFAR recipe adapted to the digits.")] = "custom",
    seeds: Annotated[int | None, typer.Option(
        "--seeds", help="Train every model once per seed (seed, seed+1 ...); default 1.")] = None,
    warmup: Annotated[int | None, typer.Option(
        "--warmup", help="Steps at a tenth of the rate first (default 0; paper recipe 10 % of the steps).")] = None,
    eval_every: Annotated[int | None, typer.Option(
        "--eval-every", help="Evaluate on 20 % held-out digits every k steps (0: never; paper recipe steps/10).",
    )] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Compare gradient flow through skip and main paths: at init and over N training steps."""
    from resviz.api import compare  # heavy: imported inside the command

    kind = output_kind(output)
    command = "resviz " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "resviz compare"
    with progress_bar(quiet) as progress:
        result = compare(list(models), steps=steps, batch=batch, input_size=input, data=data, seed=seed,
                         device=device, lr=lr, every=every, progress=progress, recipe=recipe, seeds=seeds,
                         warmup=warmup, eval_every=eval_every)
    result = result.with_command(command)
    files = _render(result, output, kind)
    for path, text in files:
        write_atomic(path, text)
    for m in result.models:
        mark = "" if m.status is TrainingStatus.OK else f"  [{m.training.message if m.training else m.status}]"
        echo(f"{m.name}: gradient first block / last block = {m.headline:.4g}{mark}")
    _summary(result)
    echo("wrote " + ", ".join(str(p) for p, _ in files))
    if result.settings.interrupted:
        typer.echo(f"interrupted: the report covers {result.settings.steps_done} step(s)", err=True)
        raise typer.Exit(code=130)


def _summary(result: Any) -> None:
    """Final held-out error per model, then what the numbers reproduce (the report's findings)."""
    from resviz.render.report.tables import findings_context, pct, recipe_headline

    for m in result.models:
        err = m.held_out_error
        if err is not None:
            spread = f" (range {pct(err.low)} to {pct(err.high)}, std {pct(err.std)}, {err.n} seeds)"
            echo(f"{m.name}: final held-out error {pct(err.mean)}{spread if err.n > 1 else ''}")
    lines = recipe_headline(result)
    context = findings_context(result)
    for line in [*lines, context] if lines and context else lines:
        echo(line)


def _render(result: Any, output: Path, kind: Any) -> list[tuple[Path, str]]:
    """Every file's full text, rendered before anything is written: the report, and beside an HTML
    or Markdown one the JSON with every number behind it."""
    from resviz.render.report import ReportFormat, render_report

    report = [(output, render_report(result, kind))]
    return report if kind is ReportFormat.JSON else [(output.with_suffix(".json"), result.to_json(indent=1)), *report]
