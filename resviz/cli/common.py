"""Shared pieces of the CLI: spec options, one-line user errors, atomic file output.

User errors (:class:`~resviz.errors.ResvizError`) print ``error: <message>`` on stderr and exit with
code 2, with no traceback. Files are written to a temporary file beside the target and renamed into
place, so a failed or interrupted command never leaves a half-written output.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer

from resviz.errors import ResvizError, one_line, quote

F = TypeVar("F", bound=Callable[..., Any])

ModelArg = Annotated[
    str,
    typer.Argument(help=(
        "Preset name (see `resviz list`), MODEL@KEY=VALUE, a spec file (.json/.yaml), `custom`, or your own model: "
        "package.module:factory, path/to/file.py:factory, torchvision:resnet50, timm:convnext_atto."
    )),
]
PlainOpt = Annotated[bool, typer.Option("--plain", help="Use the plain twin: same layers, no skips.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec field, e.g. --set shortcut=C --set layers=2,2,2,2."),
]
InputOpt = Annotated[
    str | None, typer.Option("--input", "-i", help="Input size NxCxHxW, e.g. 1x3x224x224.")
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")]



def fail(message: str) -> typer.Exit:
    """Print a one-line user error and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def user_errors(fn: F) -> F:
    """Turn :class:`ResvizError` into one line on stderr and exit code 2; Ctrl-C exits with 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ResvizError as exc:
            raise fail(one_line(exc)) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(code=130) from None  # 128 + SIGINT, as shells report it

    return wrapper  # type: ignore[return-value]


def resolve_cli_spec(model: str, plain: bool = False, sets: list[str] | None = None) -> Any:
    """Preset, spec file or ``custom`` (+ ``--set`` overrides, + ``--plain``) -> validated spec, as
    :func:`resviz.api.resolve_target` reads them; a factory (``pkg.mod:factory``) stays the name it
    is, for the api to build as each command needs (counted on the meta device, built for a trace)."""
    from resviz import api  # here, not at the top: ``resviz --help`` must not import torch

    if api.is_factory(model) and not plain and not sets:
        return model
    return api.resolve_target(model, plain, api.parse_overrides(sets or []))


def with_weights(target: Any, weights: str | None, device: str = "cpu", seed: int = 0) -> Any:
    """``target`` with the checkpoint ``weights`` loaded (strict keys and shapes; ``weights_only``
    or safetensors): a module as it is, a spec built first. Without ``weights``, ``target``."""
    if weights is None:
        return target
    from torch import nn

    from resviz import api

    model = target if isinstance(target, nn.Module) else api.resolve_model(target, device, seed).model
    return api.load_checkpoint(model, weights)


def check_format(fmt: str, allowed: tuple[str, ...] = ("table", "json", "csv")) -> str:
    f = fmt.strip().lower()
    if f not in allowed:
        raise ResvizError(f"unknown format {quote(fmt)}: choose one of {', '.join(allowed)}")
    return f


def echo(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def console() -> Any:
    """A rich Console; wide when output is piped so tables are not cut to 80 columns."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


Progress = Callable[[int, int, str], None]


@contextmanager
def progress_bar(quiet: bool) -> Iterator[Progress]:
    """A ``progress(done, total, label)`` callback drawing a rich bar on stderr. The bar starts at the
    first report, once the api has accepted its arguments, so an argument error is the only thing
    printed; it stops on exit. ``quiet``: a callback that draws nothing."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    bar = Bar(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
              console=Console(stderr=True), transient=False)
    task: Any = None

    def progress(done: int, total: int, label: str) -> None:
        nonlocal task
        if quiet:
            return
        if task is None:
            bar.start()
            task = bar.add_task(label[:28], total=total)
        bar.update(task, completed=done, total=total, description=label[:28])

    try:
        yield progress
    finally:
        if task is not None:
            bar.stop()
