"""The comparison report as Markdown: the same tables and numbers as the HTML, without figures.

Every text that comes from the record (model names from a user's spec, notes, the command line)
is escaped (:func:`_text`): Markdown renders raw HTML, so a name such as ``<img onerror=...>``
would otherwise run in the reader's viewer, as the HTML report already prevents; and a name such
as ``![x](https://...)`` would load a remote image or make a ``javascript:`` link, so the
characters that open links, images, code and emphasis are backslash-escaped too.
"""

from __future__ import annotations

import html

from resviz.records import Comparison
from resviz.render.report.tables import (
    Table,
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

_MARKUP = str.maketrans({c: "\\" + c for c in "\\[]`*"})


def _text(text: str) -> str:
    """``text`` as literal Markdown text on one line: HTML's ``&``, ``<`` and ``>`` escaped, and
    the backslash, brackets, backticks and asterisks that would start links, images, code or
    emphasis."""
    return " ".join(html.escape(str(text), quote=False).translate(_MARKUP).splitlines())


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|")


def text_md(text: str) -> str:
    """``text`` as literal Markdown text on one line (:func:`_text`), for other Markdown renderers."""
    return _text(text)


def table_md(table: Table) -> str:
    header, rows = table
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(c: Comparison) -> str:
    title = _text(" vs ".join(c.settings.models))
    out = [f"# Gradient flow: {title}", "", "## Headline", ""]
    findings = recipe_headline(c)
    if findings:
        out += [*(f"- **{_text(line)}**" for line in findings), ""]
        context = findings_context(c)
        if context:
            out += [_text(context), ""]
    out += [table_md(headline_table(c)), ""]
    out += [f"- {_text(headline_sentence(m))}" for m in c.models]
    out += [f"- **{_text(n.subject)}**: {_text(n.text)}" if n.subject else f"- note: {_text(n.text)}" for n in notes(c)]
    train = training_table(c)
    if train[1]:
        out += ["", "## Training", "", table_md(train)]
    held = held_out_table(c)
    if held[1]:
        out += ["", "## Held-out images, end of training", "", table_md(held)]
    out += ["", "## Per stage"]
    for m in c.models:
        out += ["", f"### {_text(m.name)}", "", table_md(stage_table(m))]
    out += ["", "## Per block"]
    for m in c.models:
        out += ["", f"### {_text(m.name)}", "", table_md(block_table(m))]
    out += ["", "## Run settings", "", table_md(settings_table(c)), ""]
    return "\n".join(out)
