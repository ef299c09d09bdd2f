"""Renderers of comparison reports: each returns a string; the surfaces write files.

Markdown and JSON need nothing beyond the core; the HTML page draws its figures with Plotly, which
comes with the ``reports`` extra and is imported only when an HTML report is drawn.
"""

from __future__ import annotations

from resviz.extras import require
from resviz.records import Comparison
from resviz.render.report.formats import ReportFormat, report_format
from resviz.render.report.markdown import render_markdown

#: What the one-line error says needs the ``reports`` extra.
HTML_FEATURE = "an HTML report"


def check_html() -> None:
    """Refuse in one line when Plotly (the ``reports`` extra) is missing: surfaces call this before
    a long comparison run whose report is HTML."""
    require("plotly", "reports", HTML_FEATURE)


def render_html(comparison: Comparison) -> str:
    """The report as one self-contained HTML page (:mod:`resviz.render.report.html`)."""
    check_html()
    # Imported here: Plotly is an optional extra, and Markdown and JSON reports do without it.
    from resviz.render.report.html import render_html as draw_html

    return draw_html(comparison)


def render_report(comparison: Comparison, fmt: ReportFormat) -> str:
    """The whole text of ``comparison`` in ``fmt``."""
    if fmt is ReportFormat.HTML:
        return render_html(comparison)
    if fmt is ReportFormat.MARKDOWN:
        return render_markdown(comparison)
    return comparison.to_json(indent=1)


__all__ = [
    "HTML_FEATURE", "ReportFormat", "check_html", "render_html", "render_markdown", "render_report", "report_format",
]
