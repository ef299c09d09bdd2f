"""The Python surface's files: a comparison written as a report, whole or not at all.

Importing this module loads the report renderer (Plotly) but not PyTorch.
"""

from __future__ import annotations

from pathlib import Path

from resviz.files import write_atomic
from resviz.records import Comparison
from resviz.render.report import render_report, report_format


def write_report(comparison: Comparison, path: str | Path) -> Path:
    """Write ``comparison`` as a self-contained HTML page (``.html``), Markdown (``.md``) or JSON
    (``.json``), told by the suffix, whole or not at all (:func:`resviz.files.write_atomic`)."""
    return write_atomic(path, render_report(comparison, report_format(path)))


__all__ = ["write_report"]
