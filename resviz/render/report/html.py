"""The comparison report as one self-contained HTML page (returned as a string).

Plotly's JavaScript is inlined once (``plotly.offline.get_plotlyjs``) and diagrams are inline SVG,
so the file opens offline and can be mailed or archived as is. Order: headline table, figures,
per-stage tables, diagrams, then the run's settings.
"""

from __future__ import annotations

import html

from resviz.records import Comparison
from resviz.render.report import plots
from resviz.render.report.diagrams import model_diagrams
from resviz.render.report.page import figures_html, page, table_html
from resviz.render.report.tables import (
    block_table,
    findings_context,
    headline_sentence,
    headline_table,
    held_out_table,
    notes,
    recipe_headline,
    settings_table,
    stage_table,
    training_table,
)


def _diagrams(c: Comparison) -> str:
    parts = []
    for m in c.models:
        cells = []
        for d in model_diagrams(m):
            title = f"<h3>{html.escape(m.name)}: {html.escape(d.view)}</h3>"
            body = d.svg if d.svg else f'<p class="note">{html.escape(d.note)}</p>'
            cells.append(f'<div class="diagram">{title}{body}</div>')
        parts.append('<div class="diagrams">' + "".join(cells) + "</div>")
    return "\n".join(parts)


def _notes(c: Comparison) -> str:
    parts = []
    for n in notes(c):
        if n.subject:
            parts.append(f'<p class="status-{n.kind}">{html.escape(n.subject)}: {html.escape(n.text)}</p>')
        else:
            parts.append(f'<p class="note">{html.escape(n.text)}</p>')
    return "\n".join(parts)


def _training(c: Comparison) -> str:
    table = training_table(c)
    text = f"<h3>Training</h3>\n{table_html(table)}" if table[1] else ""
    held = held_out_table(c)
    if held[1]:
        text += f"\n<h3>Held-out images, end of training</h3>\n{table_html(held)}"
    return text


def _findings(c: Comparison) -> str:
    """The recipe's findings, first under the headline title."""
    lines = recipe_headline(c)
    if not lines:
        return ""
    items = "\n".join(f"<li>{html.escape(line)}</li>" for line in lines)
    context = findings_context(c)
    note = f'<p class="note">{html.escape(context)}</p>\n' if context else ""
    return f'<ul class="headline findings">\n{items}\n</ul>\n{note}'


def _stage_tables(c: Comparison) -> str:
    parts = []
    for m in c.models:
        parts.append(f"<h3>{html.escape(m.name)}</h3>")
        parts.append(table_html(stage_table(m)))
        parts.append(f"<details><summary>every block of {html.escape(m.name)}</summary>"
                     f"{table_html(block_table(m))}</details>")
    return "\n".join(parts)


def render_html(c: Comparison) -> str:
    """The full report page."""
    title = "Gradient flow: " + " vs ".join(c.settings.models)
    steps = c.settings.steps_done
    values = {
        "training_phrase": f" and over {steps} training steps" if steps else "",
        "headline_table": _findings(c) + table_html(headline_table(c), cls="headline"),
        "headline_items": "\n".join(f"<li>{html.escape(headline_sentence(m))}</li>" for m in c.models),
        "notes": _notes(c),
        "training_table": _training(c),
        "figures": figures_html(plots.figures(c)),
        "stage_tables": _stage_tables(c),
        "diagrams": _diagrams(c),
        "settings_table": table_html(settings_table(c), cls="settings"),
    }
    return page("report.html", values, title, c.settings.versions.get("resviz", ""))
