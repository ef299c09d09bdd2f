"""Renderers of comparison reports: each returns a string; only the CLI writes files."""

from __future__ import annotations

from resviz.render.report.html import render_html
from resviz.render.report.markdown import render_markdown

__all__ = ["render_html", "render_markdown"]
