"""A study's report files: the self-contained HTML page (:mod:`resviz.render.report.study_html`,
the ``reports`` extra) or the JSON with every number, told by the file's suffix.

Kept apart from the page so that the format is read, and a missing Plotly refused, before a study
runs, and so that JSON needs nothing beyond the core.
"""

from __future__ import annotations

from pathlib import Path

from resviz.errors import ResvizError, quote
from resviz.extras import require
from resviz.records import StudyResult
from resviz.render.report.formats import ReportFormat, report_format

#: What the one-line error says needs the ``reports`` extra.
STUDY_FEATURE = "a study report"


def check_study_html() -> None:
    """Refuse in one line when Plotly (the ``reports`` extra) is missing, before a long study."""
    require("plotly", "reports", STUDY_FEATURE)


def study_format(path: str | Path) -> ReportFormat:
    """HTML or JSON, told by ``path``'s suffix; a one-line error for anything else."""
    try:
        fmt = report_format(path)
    except ResvizError:
        fmt = ReportFormat.MARKDOWN
    if fmt is ReportFormat.MARKDOWN:
        raise ResvizError(f"cannot tell the study report format from {quote(Path(path).name)}: use .html or .json")
    return fmt


def render_study_json(result: StudyResult) -> str:
    """Every number of ``result`` as JSON (:meth:`StudyResult.to_json`), read back by
    :meth:`StudyResult.from_json`."""
    return result.to_json(indent=1)


def render_study(result: StudyResult, fmt: ReportFormat) -> str:
    """The whole text of ``result`` in ``fmt`` (HTML or JSON)."""
    if fmt is ReportFormat.JSON:
        return render_study_json(result)
    if fmt is not ReportFormat.HTML:
        raise ResvizError("a study report is HTML or JSON")
    check_study_html()
    from resviz.render.report import study_html  # Plotly: only for the page

    return study_html.render_study_html(result)


__all__ = ["STUDY_FEATURE", "check_study_html", "render_study", "render_study_json", "study_format"]
