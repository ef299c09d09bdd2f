"""Renderers of comparison reports: each returns a string; the surfaces write files."""

from __future__ import annotations

from resviz.records import Comparison
from resviz.render.report.formats import ReportFormat, report_format
from resviz.render.report.html import render_html
from resviz.render.report.markdown import render_markdown


def render_report(comparison: Comparison, fmt: ReportFormat) -> str:
    """The whole text of ``comparison`` in ``fmt``."""
    if fmt is ReportFormat.HTML:
        return render_html(comparison)
    if fmt is ReportFormat.MARKDOWN:
        return render_markdown(comparison)
    return comparison.to_json(indent=1)


__all__ = ["ReportFormat", "render_html", "render_markdown", "render_report", "report_format"]
