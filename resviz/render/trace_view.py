"""Terminal and flat-file views of a :class:`~resviz.records.Trace`.

The per-block table is the one-screen answer to "how much does each block add, and how does the
gradient come back": main and skip RMS with their ratio, and the branch gradient norms with the
share the shortcut carries. Renderers return objects (a rich ``Table``, a CSV string, a dict).
Numbers come from :mod:`resviz.render.format`: a value not measured (no backward pass, a plain
block's ratio) shows as its ``MISSING`` dash in the tables and as an empty cell in the CSV.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from rich.table import Table

from resviz.records import ShortcutKind, Trace, shape_str
from resviz.render.format import MISSING, csv_value, percent, sig
from resviz.render.theme import MAIN_COLOR, SKIP_COLOR


def block_table(trace: Trace) -> Any:
    """A rich Table, one row per residual block: signal (main, skip, ratio), then gradients."""
    table = Table(title=f"{trace.model} @ {shape_str(trace.input_shape)} on {trace.device} ({trace.dtype})")
    for col, just in (
        ("block", "left"), ("shortcut", "left"), ("main", "right"), ("skip", "right"),
        ("ratio", "right"), ("∇main", "right"), ("∇skip", "right"), ("∇total", "right"),
        ("skip%", "right"),
    ):
        style = MAIN_COLOR if "main" in col else SKIP_COLOR if "skip" in col else None
        table.add_column(col, justify=just, style=style, no_wrap=True)  # type: ignore[arg-type]
    for b in trace.blocks:
        table.add_row(
            b.label, b.shortcut, sig(b.main_rms), sig(b.skip_rms),
            sig(b.rms_ratio) if b.shortcut != ShortcutKind.NONE else MISSING,
            sig(b.grad_main), sig(b.grad_skip), sig(b.grad_total), percent(b.skip_share),
        )
    loss = sig(trace.loss, 4)
    table.caption = (
        "main/skip: RMS of the two addends and their ratio; ∇: gradient norm at the block input "
        f"through each path; loss {loss}, {len(trace.layers)} layers, {len(trace.blocks)} blocks, seed {trace.seed}, "
        f"torch {trace.torch_version}"
    )
    return table


def layer_table(trace: Trace) -> Any:
    """A rich Table of per-layer output statistics (for ``--layers``)."""
    table = Table(title=f"{trace.model}: layer outputs")
    for col in ("layer", "type", "output", "mean", "std", "min", "max", "zeros", "nan/inf"):
        table.add_column(col, justify="left" if col in ("layer", "type") else "right", no_wrap=True)
    for lr in trace.layers:
        bad = lr.nan_count + lr.inf_count
        table.add_row(
            lr.label, lr.type, shape_str(lr.output_shape), sig(lr.mean), sig(lr.std), sig(lr.min),
            sig(lr.max), percent(lr.zero_fraction), f"{lr.nan_count}/{lr.inf_count}" if bad else "",
            style="red" if bad else None,
        )
    return table


BLOCK_COLUMNS = (
    "kind", "name", "stage", "index", "shortcut", "main_rms", "skip_rms", "grad_main", "grad_skip",
    "grad_total", "call",
)
LAYER_COLUMNS = (
    "kind", "name", "type", "output_shape", "mean", "std", "min", "max", "rms", "zero_fraction",
    "nan_count", "inf_count", "stage", "block", "branch", "call",
)


def trace_csv(trace: Trace) -> str:
    """Two tables in one CSV: block rows first (``kind=block``), then layer rows (``kind=layer``).

    Each section has its own header line, so ``pandas.read_csv`` on either part, or a spreadsheet,
    reads it without guessing; empty cells mean "not measured" (no backward pass).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(BLOCK_COLUMNS)
    for b in trace.blocks:
        w.writerow(["block", b.name, b.stage, b.index, b.shortcut, b.main_rms, b.skip_rms,
                    csv_value(b.grad_main), csv_value(b.grad_skip), csv_value(b.grad_total), b.call])
    w.writerow(LAYER_COLUMNS)
    for lr in trace.layers:
        w.writerow(["layer", lr.name, lr.type, shape_str(lr.output_shape), lr.mean, lr.std, lr.min, lr.max,
                    lr.rms, lr.zero_fraction, lr.nan_count, lr.inf_count, lr.stage, lr.block, lr.branch,
                    lr.call])
    return buf.getvalue()


def trace_json(trace: Trace) -> dict[str, Any]:
    """The JSON document of ``resviz trace -o trace.json`` (:meth:`Trace.to_dict`, NaN as strings)."""
    return trace.to_dict()


__all__ = ["block_table", "layer_table", "trace_csv", "trace_json"]
