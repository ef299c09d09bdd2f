"""MkDocs hook: the CLI reference page, generated from the Typer app at build time.

``docs/cli.md`` holds the marker ``<!-- resviz-cli-reference -->``; this hook replaces it with one
section per command of ``resviz`` (usage, arguments, options with their defaults), read from
``typer.main.get_command(resviz.cli.app)``, so the page cannot drift from ``resviz --help``.
Importing ``resviz.cli`` needs Typer only (the commands import PyTorch inside their functions), so
the docs build neither needs PyTorch nor an installed resviz: the repository root is put on
``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- resviz-cli-reference -->"
ROOT = Path(__file__).resolve().parents[2]


def _cell(text: str) -> str:
    """One Markdown table cell: no line breaks, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _params_table(title: str, records: list[tuple[str, str]]) -> list[str]:
    if not records:
        return []
    lines = [f"**{title}**", "", "| name | description |", "| --- | --- |"]
    lines += [f"| `{_cell(name)}` | {_cell(help_text)} |" for name, help_text in records]
    return [*lines, ""]


def cli_markdown(prog: str = "resviz") -> str:
    """Markdown for every command of the resviz CLI, in ``resviz --help`` order."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import typer.main

    from resviz.cli import app

    group: Any = typer.main.get_command(app)
    root_ctx = group.make_context(prog, [], resilient_parsing=True)
    out = [group.help or "", ""]
    names = group.list_commands(root_ctx)
    out += ["| command | what it does |", "| --- | --- |"]
    for name in names:
        cmd = group.get_command(root_ctx, name)
        out.append(f"| [`{prog} {name}`](#{prog}-{name}) | {_cell(cmd.get_short_help_str(limit=200))} |")
    out.append("")
    for name in names:
        cmd = group.get_command(root_ctx, name)
        ctx = cmd.make_context(name, [], parent=root_ctx, resilient_parsing=True)
        args: list[tuple[str, str]] = []
        opts: list[tuple[str, str]] = []
        for param in cmd.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            (args if param.param_type_name == "argument" else opts).append(record)
        out += [f"## `{prog} {name}` {{ #{prog}-{name} }}", "", cmd.help or "", ""]
        out += ["```console", f"$ {prog} {name} {' '.join(cmd.collect_usage_pieces(ctx))}", "```", ""]
        out += _params_table("Arguments", args)
        out += _params_table("Options", opts)
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_markdown())
