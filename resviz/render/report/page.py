"""What every self-contained HTML page resviz writes shares: the page around a report's body
(``assets/page.html``: title, the stylesheet, Plotly's JavaScript inlined once, the footer), its
figures as Plotly divs, and its tables. The comparison, series and study reports fill in a body
template of their own and hand it here.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from importlib import resources
from string import Template
from typing import Any

from resviz.extras import missing
from resviz.render.report.tables import Table

try:
    import plotly.offline
except ImportError as exc:  # Plotly comes with the 'reports' extra
    raise missing(exc, "reports", "an HTML report") from None

def asset(name: str) -> str:
    return resources.files("resviz.render.report").joinpath("assets", name).read_text(encoding="utf-8")


def page(body: str, values: Mapping[str, str], title: str, version: str) -> str:
    """The whole page: the body template ``assets/<body>`` filled with ``values``, inside the shared
    page; ``title`` and ``version`` are escaped here."""
    inner = Template(asset(body)).substitute(values)
    return Template(asset("page.html")).substitute(
        title=html.escape(title), version=html.escape(version), css=asset("report.css"),
        plotlyjs=plotly.offline.get_plotlyjs(), body=inner.rstrip("\n"),
    )


def figures_html(figures: Iterable[tuple[str, Any]]) -> str:
    """Each ``(id, figure)`` as a responsive Plotly div (the JavaScript is in the page's head)."""
    parts = []
    for fig_id, fig in figures:
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{fig_id}",
                          config={"displaylogo": False, "responsive": True})
        parts.append(f'<div class="figure">{div}</div>')
    return "\n".join(parts)


def table_html(table: Table, cls: str = "") -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


__all__ = ["Table", "asset", "figures_html", "page", "table_html"]
