"""The Python surface's files: a comparison written as a report, whole or not at all.

Importing this module loads the report renderer (Plotly) but not PyTorch.
"""

from __future__ import annotations

from pathlib import Path

from resviz.files import write_atomic
from resviz.records import Comparison
from resviz.render.report import render_html, render_markdown


def write_report(comparison: Comparison, path: str | Path) -> Path:
    """Write ``comparison`` as a self-contained HTML page (``.html``), Markdown (``.md``) or JSON
    (anything else), whole or not at all (:func:`resviz.files.write_atomic`)."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix in (".html", ".htm"):
        text = render_html(comparison)
    elif suffix == ".md":
        text = render_markdown(comparison)
    else:
        text = comparison.to_json(indent=1)
    return write_atomic(out, text)


__all__ = ["write_report"]
