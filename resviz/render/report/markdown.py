"""The comparison report as Markdown: the same tables and numbers as the HTML, without figures."""

from __future__ import annotations

from resviz.records import Comparison
from resviz.render.report.tables import (
    Table,
    block_table,
    headline_sentence,
    headline_table,
    notes,
    settings_table,
    stage_table,
    training_table,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_md(table: Table) -> str:
    header, rows = table
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(c: Comparison) -> str:
    out = [f"# Gradient flow: {' vs '.join(c.settings.models)}", "", "## Headline", "", table_md(headline_table(c)), ""]
    out += [f"- {headline_sentence(m)}" for m in c.models]
    out += [f"- **{n.subject}**: {n.text}" if n.subject else f"- note: {n.text}" for n in notes(c)]
    train = training_table(c)
    if train[1]:
        out += ["", "## Training", "", table_md(train)]
    out += ["", "## Per stage"]
    for m in c.models:
        out += ["", f"### {m.name}", "", table_md(stage_table(m))]
    out += ["", "## Per block"]
    for m in c.models:
        out += ["", f"### {m.name}", "", table_md(block_table(m))]
    out += ["", "## Run settings", "", table_md(settings_table(c)), ""]
    return "\n".join(out)
