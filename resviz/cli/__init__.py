"""The ``resviz`` command line: one Typer command per job.

Command modules import heavy libraries inside their functions, so ``resviz --help`` and the
static commands start in about the time of ``import torch``.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="resviz",
    help="See inside residual networks: build, measure, trace, draw and compare ResNets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its commands on ``app`` when imported.
from resviz.cli import (  # noqa: E402
    compare_cmd,  # noqa: F401
    core_cmds,  # noqa: F401
    diagram_cmd,  # noqa: F401
    trace_cmd,  # noqa: F401
)


def main() -> None:
    app()
