"""Terminal and flat-file views of a :class:`~resviz.records.Summary`.

Renderers return objects (a ``rich.table.Table``, a CSV string, a dict); the CLI prints them.
Numbers are formatted by :mod:`resviz.render.format`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from resviz.records import LayerRecord, Reconciliation, Summary, shape_str
from resviz.render.format import human, num


@dataclass(frozen=True)
class Row:
    """A layer, or a group of layers folded to ``--depth``."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    elementwise: int
    activation_bytes: int
    depth: int


def fold(layers: Sequence[LayerRecord], depth: int | None) -> list[Row]:
    """Group layers by the first ``depth`` components of their qualified names, in order.

    ``depth=None`` keeps every leaf. A group reports its last layer's output shape, the sum of its
    counts and, as type, the module types it contains.
    """
    rows: list[Row] = []
    groups: dict[str, list[LayerRecord]] = {}
    order: list[str] = []
    for lr in layers:
        parts = lr.name.split(".")
        key = ".".join(parts[:depth]) if depth else lr.label
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(lr)
    for key in order:
        g = groups[key]
        single = len(g) == 1 and g[0].label == key
        kind = g[0].type if single else _group_type(g)
        rows.append(
            Row(
                name=key,
                type=kind,
                output_shape=g[-1].output_shape,
                params=sum(x.params for x in g),
                macs=sum(x.macs for x in g),
                elementwise=sum(x.elementwise for x in g),
                activation_bytes=sum(x.activation_bytes for x in g),
                depth=key.count(".") + 1,
            )
        )
    return rows


def _group_type(group: Sequence[LayerRecord]) -> str:
    blocks = {x.block for x in group if x.block}
    if len(blocks) > 1:
        return f"{len(blocks)} blocks"
    if len(blocks) == 1 and group[0].block == group[0].name.rsplit(".", 1)[0]:
        return "block"
    return f"{len(group)} layers"


def summary_table(summary: Summary, depth: int | None = None) -> Any:
    """A rich Table: one row per layer (or folded group), then totals in the caption."""
    table = Table(title=f"{summary.model} @ {shape_str(summary.input_shape)}", show_lines=False)
    for col, just in (
        ("layer", "left"), ("type", "left"), ("output", "right"), ("params", "right"),
        ("MACs", "right"), ("elementwise", "right"), ("act. mem", "right"),
    ):
        table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for r in fold(summary.layers, depth):
        table.add_row(
            r.name, r.type, shape_str(r.output_shape), num(r.params), human(r.macs),
            human(r.elementwise), human(r.activation_bytes) + "B",
        )
    table.caption = (
        f"params {num(summary.total_params)} ({human(summary.total_params)}), "
        f"MACs {human(summary.total_macs)} (FLOPs {human(summary.total_flops)}), "
        f"elementwise {human(summary.total_elementwise)}, "
        f"activations {human(summary.activation_bytes)}B, weights {human(summary.param_bytes)}B"
    )
    return table


def stage_table(summary: Summary) -> Any:
    """He et al. 2015, Table 1 style: stage, output size, blocks, params, MACs, receptive field."""
    table = Table(title="stages")
    for col in ("stage", "output", "blocks", "params", "MACs", "receptive field", "stride"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for s in summary.stages:
        table.add_row(
            s.name, shape_str(s.output_shape[1:]), str(s.num_blocks), num(s.params),
            human(s.macs), f"{s.receptive_field}", f"{s.jump}",
        )
    return table


def layers_csv(summary: Summary, depth: int | None = None) -> str:
    """The layer rows (folded when ``depth``) as CSV with a header line; counts stay exact integers."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "type", "output_shape", "params", "macs", "elementwise", "activation_bytes"])
    for r in fold(summary.layers, depth):
        w.writerow([r.name, r.type, shape_str(r.output_shape), r.params, r.macs, r.elementwise,
                    r.activation_bytes])
    return buf.getvalue()


def summary_json(summary: Summary, depth: int | None = None) -> dict[str, Any]:
    """The JSON document of ``resviz summary --format json`` (layers folded when ``depth``)."""
    d = summary.to_dict()
    if depth:
        d["layers"] = [
            {"name": r.name, "type": r.type, "output_shape": list(r.output_shape), "params": r.params,
             "macs": r.macs, "elementwise": r.elementwise, "activation_bytes": r.activation_bytes}
            for r in fold(summary.layers, depth)
        ]
        d["depth"] = depth
    return d


def reconcile_table(result: Reconciliation) -> Any:
    """resviz beside fvcore, torchinfo and FlopCounterMode, one row per layer type."""
    table = Table(title=f"{result.model} @ {shape_str(result.input_shape)}: counters side by side")
    for col in ("layer type", "n", "resviz MACs", "resviz elementwise", "fvcore", "torchinfo",
                "FlopCounterMode", "why they differ"):
        table.add_column(col, justify="left" if col in ("layer type", "why they differ") else "right")
    for r in result.rows:
        table.add_row(r.layer_type, str(r.layers), num(r.resviz_macs), num(r.resviz_elementwise),
                      num(r.fvcore), num(r.torchinfo), num(r.flop_counter), r.explanation)
    t = result.totals
    table.add_row("total", "", num(t["resviz_macs"]), num(t["resviz_elementwise"]), num(t["fvcore"]),
                  num(t["torchinfo"]), num(t["flop_counter"]), "", style="bold")
    table.caption = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    return table


def reconcile_csv(result: Reconciliation) -> str:
    """:func:`reconcile_table`'s rows as CSV, one layer type per line (no totals row)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["layer_type", "layers", "resviz_macs", "resviz_elementwise", "fvcore", "torchinfo",
                "flop_counter", "explanation"])
    for r in result.rows:
        w.writerow([r.layer_type, r.layers, r.resviz_macs, r.resviz_elementwise, r.fvcore, r.torchinfo,
                    r.flop_counter, r.explanation])
    return buf.getvalue()


__all__ = [
    "Row", "fold", "human", "layers_csv", "reconcile_csv", "reconcile_table", "stage_table", "summary_json",
    "summary_table",
]
