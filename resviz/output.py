"""The Python surface's files: a comparison or a monitored run written as a report, a run saved
as JSON; each whole or not at all.

Importing this module loads the report renderer (Plotly) but not PyTorch.
"""

from __future__ import annotations

import json
from pathlib import Path

from resviz.files import check_writable, write_atomic
from resviz.records import Comparison, MonitorSeries, StudyResult
from resviz.render.report import ReportFormat, render_report, report_format
from resviz.render.report.series import check_series, check_series_html, render_series


def write_report(comparison: Comparison, path: str | Path) -> Path:
    """Write ``comparison`` as a self-contained HTML page (``.html``), Markdown (``.md``) or JSON
    (``.json``), told by the suffix, whole or not at all (:func:`resviz.files.write_atomic`)."""
    return write_atomic(path, render_report(comparison, report_format(path)))


def save_series(series: MonitorSeries, path: str | Path, all_ranks: bool = False) -> Path | None:
    """Write a monitored run (``mon.series``) as JSON, whole or not at all: the file
    ``resviz.load_series`` and ``resviz report-series`` read. Under ``torch.distributed`` only rank
    0 writes (and the others return ``None``) unless ``all_ranks``: give each rank its own path then."""
    from resviz.api import writes_files  # here: this module's import does not load PyTorch

    if not writes_files(all_ranks):
        return None
    return write_atomic(path, json.dumps(series.to_dict(), indent=1, allow_nan=False))


def write_series_report(series: MonitorSeries, path: str | Path) -> Path:
    """Write the report of a monitored run as HTML (``.html``, the ``reports`` extra), Markdown
    (``.md``) or JSON (``.json``), told by the suffix; a series the report cannot draw (fewer than
    two snapshots, a NaN) is refused in one line before the path is touched."""
    fmt = report_format(path)
    if fmt is ReportFormat.HTML:
        check_series_html()
    check_writable(path)
    check_series(series)
    return write_atomic(path, render_series(series, fmt))


def write_study_report(result: StudyResult, path: str | Path) -> Path:
    """Write a study (:func:`resviz.study`) as its self-contained HTML page (``.html``, the
    ``reports`` extra) or as JSON with every number (``.json``), told by the suffix; rendered in
    memory first, then written whole or not at all."""
    from resviz.render.report.study import check_study_html, render_study, study_format

    fmt = study_format(path)
    if fmt is ReportFormat.HTML:
        check_study_html()
    check_writable(path)
    return write_atomic(path, render_study(result, fmt))


__all__ = ["save_series", "write_report", "write_series_report", "write_study_report"]
