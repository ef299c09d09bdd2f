"""The formats a comparison report is written in, told by the file's suffix."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from resviz.errors import ResvizError, quote


class ReportFormat(StrEnum):
    HTML = "html"  # self-contained page: Plotly inlined, diagrams as inline SVG
    MARKDOWN = "markdown"
    JSON = "json"  # every number behind the report (Comparison.to_json)


SUFFIXES: dict[str, ReportFormat] = {
    ".html": ReportFormat.HTML, ".htm": ReportFormat.HTML,
    ".md": ReportFormat.MARKDOWN, ".markdown": ReportFormat.MARKDOWN,
    ".json": ReportFormat.JSON,
}


def report_format(path: str | Path) -> ReportFormat:
    """The format ``path``'s suffix names, or a one-line error listing the ones there are."""
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise ResvizError(f"cannot tell the report format from {quote(Path(path).name)}: use .html, .md or .json")
    return fmt


__all__ = ["SUFFIXES", "ReportFormat", "report_format"]
