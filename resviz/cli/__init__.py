"""The ``resviz`` command line: one Typer command per job.

Command modules import heavy libraries inside their functions, so ``resviz --help`` and the
static commands start in about the time of ``import torch``.

Every user error ends the same way: one line ``error: <message>`` on stderr and exit code 2.
Resviz's own errors do so in :func:`resviz.cli.common.user_errors`; :class:`OneLineGroup` does so
for the command line's own (an unknown option, a missing argument, a value out of range), which
Click and Typer would otherwise print as a usage box of several lines.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from resviz.errors import clip

try:  # Typer up to 0.2x runs on Click; later versions carry their own copy of it
    import click

    _CLICK_ERRORS: tuple[type[Exception], ...] = (click.ClickException,)
    _CLICK_ABORTS: tuple[type[BaseException], ...] = (click.exceptions.Abort,)
except ImportError:  # pragma: no cover - a Typer without Click
    _CLICK_ERRORS, _CLICK_ABORTS = (), ()

#: A command-line error (unknown option, missing argument, bad value), whichever Click raised it.
_TYPER_ERRORS: tuple[type[Exception], ...] = (typer.TyperException,) if hasattr(typer, "TyperException") else ()
USAGE_ERRORS: tuple[type[Exception], ...] = (*_CLICK_ERRORS, *_TYPER_ERRORS)
ABORTS: tuple[type[BaseException], ...] = (*_CLICK_ABORTS, typer.Abort)


def usage_line(exc: Any) -> str:
    """A Click error as one line: its message, and where to read the usage."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    command = " ".join(["resviz", *reversed(names)])
    return f"{clip(message, 300)} (see `{command} --help`)"


class OneLineGroup(TyperGroup):
    """Typer's command group with Click's usage errors printed as one line on stderr.

    The group runs Click in non-standalone mode and ends the process itself, so help, ``typer.Exit``
    codes and Ctrl-C behave as before; only the multi-line usage box is replaced.
    """

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except USAGE_ERRORS as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                sys.exit(2)  # the help is printed already, as `resviz` alone always did
            typer.echo(f"error: {usage_line(exc)}", err=True)
            sys.exit(getattr(exc, "exit_code", 2))
        except ABORTS:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="resviz",
    help="See inside residual networks: build, measure, trace, draw and compare ResNets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineGroup,
)

# Each module registers its commands on ``app`` when imported.
from resviz.cli import (  # noqa: E402
    compare_cmd,  # noqa: F401
    core_cmds,  # noqa: F401
    dashboard_cmd,  # noqa: F401
    diagram_cmd,  # noqa: F401
    series_cmd,  # noqa: F401
    study_cmd,  # noqa: F401
    trace_cmd,  # noqa: F401
)


def main() -> None:
    app()
