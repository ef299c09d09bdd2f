"""Griffe extension: the reStructuredText bits of resviz's docstrings, read as Markdown.

The docstrings cross-reference with Sphinx roles (``:func:`~resviz.api.trace```) and introduce
examples with ``Example::``. Markdown has neither: a role becomes a code span of the name (the last
part only when the target starts with ``~``, as Sphinx shows it) and ``::`` ending a paragraph
becomes ``:`` (the indented block after it is already a code block in Markdown). The source is
left as it is; only the text the site renders changes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|const):`(~?)([^`]+)`")
LITERAL_BLOCK = re.compile(r"::[ \t]*$", re.MULTILINE)


def markdown_of(text: str) -> str:
    """``text`` with Sphinx roles turned into code spans and ``::`` paragraph ends into ``:``."""

    def role(match: re.Match[str]) -> str:
        target = match.group(2).strip()
        return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"

    return LITERAL_BLOCK.sub(":", ROLE.sub(role, text))


class RstToMarkdown(griffe.Extension):
    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_of(obj.docstring.value)
