"""``resviz report-series``: the report of one monitored training run, from its saved series.

The series is a JSON file written by ``resviz.save_series(mon.series, path)`` (or
``json.dump(mon.to_dict(), f)``). The output format follows the suffix of ``-o`` as for ``resviz
compare``: ``.html`` (self-contained, needs the ``reports`` extra), ``.md`` or ``.json``. No sidecar
is written: the series file already holds every number. The output is checked before the series
is read, rendered in memory, and written whole or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from resviz.cli import app
from resviz.cli.common import echo, user_errors
from resviz.errors import ResvizError, clip_path
from resviz.files import check_writable, write_atomic


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


@app.command("report-series")
@user_errors
def report_series_cmd(
    series_file: Annotated[Path, typer.Argument(help="A monitor series JSON file (resviz.save_series).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="run.html, run.md or run.json.")],
) -> None:
    """Report one monitored training run: block x step heatmaps, loss and gradient curves."""
    from resviz.api import load_series  # heavy: imported inside the command
    from resviz.render.report import ReportFormat, report_format
    from resviz.render.report.series import check_series, check_series_html, render_series

    kind = report_format(output)
    if kind is ReportFormat.HTML:
        check_series_html()
    check_writable(output)
    if _same_file(series_file, output):
        raise ResvizError(f"cannot write {clip_path(output)}: it is the series file being read")
    series = load_series(series_file)
    check_series(series)
    write_atomic(output, render_series(series, kind))
    echo(f"{series.model}: {len(series.steps)} snapshots, steps {series.steps[0]} to {series.steps[-1]}")
    echo(f"wrote {output}")
