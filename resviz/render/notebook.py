"""Records drawn for Jupyter: compact HTML with the headline numbers first and a small SVG figure.

People who analyse networks mostly do it in notebooks, where a record would otherwise print as a
dataclass repr thousands of lines long. Each view here is a plain function ``record -> str``:

* headline numbers first (a two-column table), then the table a reader looks at next (stages,
  blocks, snapshots, models), then notes;
* a hand-written SVG line chart (:mod:`resviz.render.svg`) where a picture says more than a table:
  gradient norm per block for a :class:`~resviz.records.Trace`, the loss curve of a
  :class:`~resviz.records.MonitorSeries`, gradient against depth per model for a
  :class:`~resviz.records.Comparison`;
* bounded size: a long table shows its first and last :data:`EDGE_ROWS` rows and says how many it
  left out, so a 1000-layer model's summary is a few kilobytes;
* every name (models and layers are named by users) is escaped, and the fragment is well-formed
  XHTML, so that it also survives a notebook's HTML sanitiser. No Plotly, pandas or JavaScript.

IPython's text of a record (``text/plain``, stored in the notebook beside the HTML) is one line of
the same headline numbers (:func:`one_line`) instead of a dataclass repr that runs to megabytes for
a comparison; ``repr()`` itself is unchanged.

How a record finds its view (the design): records mix in
:class:`resviz.records.display.NotebookRepr`, whose ``_repr_html_`` and ``_repr_pretty_`` ask a
registry in the records package; :func:`register` fills it with the functions below, and the
``resviz`` package calls :func:`register` when imported. Records therefore stay plain data that
import no renderer, this module imports records only (and no IPython: Jupyter finds the methods by
duck typing), and a record shows as HTML however it was made. Diagrams show themselves through
:class:`resviz.render.diagrams.fitted.FittedDigraph`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from resviz.records import (
    BlockStats,
    Comparison,
    LayerStats,
    MonitorSeries,
    Reconciliation,
    ShortcutKind,
    Summary,
    Trace,
    shape_str,
)
from resviz.records.display import View, register_view
from resviz.render.format import MISSING, human, num, percent, sig
from resviz.render.svg import Series, escape, line_chart
from resviz.render.theme import MAIN_COLOR, SKIP_COLOR, TOTAL_COLOR, model_color

EDGE_ROWS = 8
"""How many rows a long table shows at each end (first and last)."""

Pairs = list[tuple[str, str]]
Cells = Sequence[str]

_STYLE = "font-family:sans-serif;font-size:12px;line-height:1.3"
_TABLE = "border-collapse:collapse;margin:4px 0 8px 0"
_LEFT = "text-align:left;padding:1px 8px"
_RIGHT = "text-align:right;padding:1px 8px"


def esc(text: object) -> str:
    """Text from a record (a user's model or layer name) made safe to put into HTML (and XHTML:
    control characters are replaced, as :func:`resviz.render.svg.escape` does)."""
    return escape(text)


def bounded(rows: Sequence[Cells], edge: int = EDGE_ROWS) -> list[Cells | None]:
    """The first and last ``edge`` rows of a long table, with None where rows were left out."""
    if len(rows) <= 2 * edge + 1:
        return list(rows)
    return [*rows[:edge], None, *rows[-edge:]]


def table(head: Cells, rows: Sequence[Cells], edge: int = EDGE_ROWS, left: Collection[int] = (0,)) -> str:
    """An HTML table with a header row: the columns numbered in ``left`` are left-aligned text, the
    others right-aligned numbers.

    Long tables are cut by :func:`bounded`; the gap is one row that says how many rows it hides.
    """
    left_out = len(rows) - 2 * edge
    cells = "".join(_cell("th", h, i in left) for i, h in enumerate(head))
    body = [f"<tr>{cells}</tr>"]
    for row in bounded(rows, edge):
        if row is None:
            body.append(
                f'<tr><td colspan="{len(head)}" style="text-align:center;color:#666666">'
                f"… {left_out:,} more rows …</td></tr>"
            )
        else:
            body.append("<tr>" + "".join(_cell("td", c, i in left) for i, c in enumerate(row)) + "</tr>")
    return f'<table style="{_TABLE}">' + "".join(body) + "</table>"


def _cell(tag: str, text: str, left: bool) -> str:
    return f'<{tag} style="{_LEFT if left else _RIGHT}">{esc(text)}</{tag}>'


def headline_table(pairs: Pairs) -> str:
    """The headline numbers: one ``label | value`` row each, in a table marked ``headline``."""
    rows = "".join(
        f'<tr><th style="{_LEFT}">{esc(k)}</th><td style="{_LEFT}">{esc(v)}</td></tr>'
        for k, v in pairs
    )
    return f'<table class="resviz-headline" style="{_TABLE}">{rows}</table>'


def one_line(kind: str, pairs: Pairs) -> str:
    """A record's headline numbers as one line of text: ``Summary(model: resnet50; input: ...)``."""
    return f"{kind}(" + "; ".join(f"{k}: {v}" for k, v in pairs) + ")"


MAX_NOTES = 12
"""The most notes a view lists (a model sharing weights in many places has one note per module)."""


def notes_list(notes: Sequence[str]) -> str:
    """The record's notes as a bulleted list, the first :data:`MAX_NOTES` of them (nothing when none)."""
    if not notes:
        return ""
    items = [f"<li>{esc(n)}</li>" for n in notes[:MAX_NOTES]]
    if len(notes) > MAX_NOTES:
        items.append(f"<li>… {len(notes) - MAX_NOTES:,} more notes</li>")
    return '<ul style="margin:2px 0 6px 16px;padding:0">' + "".join(items) + "</ul>"


def heading(text: str) -> str:
    return f'<div style="font-weight:bold;margin-top:6px">{esc(text)}</div>'


def figure(svg: str) -> str:
    """An SVG chart in its own block (nothing when the chart had nothing to draw)."""
    return f'<div style="margin:4px 0">{svg}</div>' if svg else ""


def card(kind: str, title: str, *parts: str) -> str:
    """The outer ``<div>`` of one record's view: its kind and title, then the parts in order."""
    head = f'<div style="font-size:14px"><b>{esc(title)}</b> <span style="color:#666666">{esc(kind)}</span></div>'
    return f'<div class="resviz-record" style="{_STYLE}">{head}{"".join(parts)}</div>'


# Summary ---------------------------------------------------------------------------------------


def summary_headline(s: Summary) -> Pairs:
    """Model, input, parameters, MACs (and FLOPs), elementwise ops, memory and counts."""
    params = f"{num(s.total_params)} ({human(s.total_params)})"
    if s.trainable_params != s.total_params:
        params += f", {num(s.trainable_params)} trainable"
    return [
        ("model", s.model),
        ("input", shape_str(s.input_shape)),
        ("parameters", params),
        ("MACs", f"{human(s.total_macs)} ({human(s.total_flops)} FLOPs)"),
        ("elementwise", human(s.total_elementwise)),
        ("activations", f"{human(s.activation_bytes)}B"),
        ("weights", f"{human(s.param_bytes)}B"),
        ("layers / blocks", f"{len(s.layers):,} / {len(s.blocks):,}"),
    ]


def stage_rows(s: Summary) -> list[Cells]:
    """He et al. 2015, Table 1 style rows: output size, blocks, params, MACs, receptive field, stride."""
    return [
        (st.name, shape_str(st.output_shape[1:]), str(st.num_blocks), num(st.params), human(st.macs),
         str(st.receptive_field), str(st.jump))
        for st in s.stages
    ]


def layer_rows(s: Summary) -> list[Cells]:
    return [(lr.label, lr.type, shape_str(lr.output_shape), num(lr.params), human(lr.macs)) for lr in s.layers]


def summary_html(s: Summary) -> str:
    """A :class:`Summary`: headline numbers, the stage table, the layers (first and last), notes."""
    return card(
        "summary", s.model,
        headline_table(summary_headline(s)),
        heading("stages"),
        table(("stage", "output", "blocks", "params", "MACs", "receptive field", "stride"), stage_rows(s)),
        heading("layers"),
        table(("layer", "type", "output", "params", "MACs"), layer_rows(s), left=(0, 1)),
        notes_list(s.notes),
    )


# Trace -----------------------------------------------------------------------------------------


def first_nonfinite(layers: Sequence[LayerStats]) -> LayerStats | None:
    """The first layer (in execution order) whose output holds a NaN or an infinity."""
    return next((lr for lr in layers if lr.nan_count or lr.inf_count), None)


def gradient_span(blocks: Sequence[BlockStats]) -> float | None:
    """Gradient at the first block's input over that at the last block's: how much it shrinks (or
    grows) on its way down; None without a backward pass or a zero denominator."""
    if not blocks or blocks[0].grad_total is None or not blocks[-1].grad_total:
        return None
    return blocks[0].grad_total / blocks[-1].grad_total


def mean_skip_share(blocks: Sequence[BlockStats]) -> float | None:
    """The mean over blocks of the share of the gradient that the shortcut carries."""
    shares = [b.skip_share for b in blocks if b.skip_share is not None and b.shortcut != ShortcutKind.NONE]
    return sum(shares) / len(shares) if shares else None


def nonfinite_text(lr: LayerStats | None) -> str:
    if lr is None:
        return "none"
    return f"{lr.label} ({lr.nan_count:,} NaN, {lr.inf_count:,} Inf)"


def trace_headline(t: Trace) -> Pairs:
    """Model, input, device, loss, the gradient's first/last-block ratio, skip share, first NaN/Inf."""
    return [
        ("model", t.model),
        ("input", f"{shape_str(t.input_shape)} on {t.device} ({t.dtype})"),
        ("loss", sig(t.loss, 4)),
        ("∇ first / last block", sig(gradient_span(t.blocks))),
        ("skip share of ∇ (mean)", percent(mean_skip_share(t.blocks))),
        ("first NaN/Inf layer", nonfinite_text(first_nonfinite(t.layers))),
        ("layers / blocks", f"{len(t.layers):,} / {len(t.blocks):,}"),
        ("seed / torch", f"{t.seed} / {t.torch_version}"),
    ]


def block_rows(blocks: Sequence[BlockStats]) -> list[Cells]:
    """Signal (main, skip, ratio) and gradient (main, skip, total, skip share) per block."""
    return [
        (b.label, str(b.shortcut), sig(b.main_rms), sig(b.skip_rms),
         sig(b.rms_ratio) if b.shortcut != ShortcutKind.NONE else MISSING,
         sig(b.grad_main), sig(b.grad_skip), sig(b.grad_total), percent(b.skip_share))
        for b in blocks
    ]


BLOCK_HEAD = ("block", "shortcut", "main RMS", "skip RMS", "main/skip", "∇main", "∇skip", "∇total", "skip share")


def gradient_chart(blocks: Sequence[BlockStats]) -> str:
    """Gradient norm at each block input (total, through the main path, through the skip path)."""
    xs = [float(i + 1) for i in range(len(blocks))]
    series = [
        Series("total", xs, [b.grad_total for b in blocks], TOTAL_COLOR),
        Series("main", xs, [b.grad_main for b in blocks], MAIN_COLOR),
        Series("skip", xs, [b.grad_skip or None for b in blocks], SKIP_COLOR),
    ]
    return line_chart(series, "gradient norm at each block input", "block", "‖∇‖", log_y=True)


def trace_html(t: Trace) -> str:
    """A :class:`Trace`: headline numbers, the gradient chart, the per-block table, notes."""
    return card(
        "trace", t.model,
        headline_table(trace_headline(t)),
        figure(gradient_chart(t.blocks)),
        heading("blocks"),
        table(BLOCK_HEAD, block_rows(t.blocks), left=(0, 1)),
        notes_list(t.notes),
    )


# MonitorSeries ---------------------------------------------------------------------------------


def series_losses(m: MonitorSeries) -> tuple[list[int], list[float | None]]:
    """Every logged loss, or the snapshots' losses when none was logged with ``mon.log_loss``."""
    if m.loss_values:
        return list(m.loss_steps), list(m.loss_values)
    return [s.step for s in m.snapshots], [s.loss for s in m.snapshots]


def _first_last(values: Sequence[float | None]) -> str:
    if not values:
        return MISSING
    return f"{sig(values[0], 4)} → {sig(values[-1], 4)}"


def monitor_headline(m: MonitorSeries) -> Pairs:
    """Model, snapshot spacing and count, the steps covered, the loss at the first and last step."""
    _steps, losses = series_losses(m)
    span = f"{m.steps[0]} … {m.steps[-1]}" if m.snapshots else MISSING
    return [
        ("model", m.model),
        ("snapshots", f"{len(m.snapshots):,} (every {m.every} steps)"),
        ("snapshot steps", span),
        ("loss (first → last)", _first_last(losses)),
        ("losses logged", f"{len(m.loss_values):,}"),
        ("blocks", f"{len(m.block_names):,}"),
    ]


def snapshot_rows(m: MonitorSeries) -> list[Cells]:
    """Per snapshot: step, loss, gradient at the first and the last block, and their ratio."""
    rows: list[Cells] = []
    for snap in m.snapshots:
        first = snap.blocks[0].grad_total if snap.blocks else None
        last = snap.blocks[-1].grad_total if snap.blocks else None
        rows.append((str(snap.step), sig(snap.loss, 4), sig(first), sig(last), sig(gradient_span(snap.blocks))))
    return rows


def loss_chart(m: MonitorSeries) -> str:
    steps, losses = series_losses(m)
    return line_chart([Series("loss", [float(s) for s in steps], losses, MAIN_COLOR)], "loss", "step", "loss")


def monitor_html(m: MonitorSeries) -> str:
    """A :class:`MonitorSeries`: headline numbers, the loss curve, one row per snapshot."""
    return card(
        "monitor series", m.model,
        headline_table(monitor_headline(m)),
        figure(loss_chart(m)),
        heading("snapshots"),
        table(("step", "loss", "∇ first block", "∇ last block", "first / last"), snapshot_rows(m)),
    )


# Comparison ------------------------------------------------------------------------------------


def comparison_headline(c: Comparison) -> Pairs:
    """What was compared and how: models, steps, batch, input, data, seed, device, learning rate."""
    st = c.settings
    data = f"{st.data.kind} ({st.data.source})" if st.data.source else str(st.data.kind)
    return [
        ("models", ", ".join(st.models)),
        ("steps", f"{st.steps_done} of {st.steps}" + (" (interrupted)" if st.interrupted else "")),
        ("batch / input", f"{st.batch} / {shape_str(st.input_shape)}"),
        ("data", data),
        ("seed / device / lr", f"{st.seed} / {st.device} / {sig(st.lr)}"),
        ("∇ first / last block", ", ".join(f"{m.name} {sig(m.headline)}" for m in c.models)),
    ]


def model_rows(c: Comparison) -> list[Cells]:
    """Per model: skips, depth, size, loss at initialisation, gradient at the first and last block,
    their ratio (the headline), how training ended and its final loss."""
    rows: list[Cells] = []
    for m in c.models:
        final = m.training.final_loss if m.training else None
        rows.append((
            m.name, "yes" if m.has_skips else "no", str(m.depth), human(m.params), human(m.macs),
            sig(m.loss_init, 4), sig(m.grad_first), sig(m.grad_last), sig(m.headline),
            str(m.status), sig(final, 4),
        ))
    return rows


MODEL_HEAD = ("model", "skips", "depth", "params", "MACs", "loss at init", "∇ first block", "∇ last block",
              "first / last", "training", "final loss")


def depth_chart(c: Comparison) -> str:
    """Gradient norm at each block input against depth, one line per model (log scale)."""
    series = [
        Series(m.name, [float(b.depth) for b in m.blocks], [b.grad_total for b in m.blocks], model_color(i))
        for i, m in enumerate(c.models)
    ]
    return line_chart(series, "gradient at each block input, at initialisation", "depth", "‖∇‖", log_y=True)


def training_chart(c: Comparison) -> str:
    """Loss per training step, one line per model (nothing without training)."""
    series = [
        Series(m.name, [float(i + 1) for i in range(len(m.training.losses))], list(m.training.losses), model_color(i))
        for i, m in enumerate(c.models) if m.training and m.training.losses
    ]
    return line_chart(series, "training loss", "step", "loss")


def comparison_html(c: Comparison) -> str:
    """A :class:`Comparison`: settings, one row per model, gradient against depth, loss curves."""
    return card(
        "comparison", " vs ".join(m.name for m in c.models),
        headline_table(comparison_headline(c)),
        table(MODEL_HEAD, model_rows(c), left=(0, 1, 9)),
        figure(depth_chart(c)),
        figure(training_chart(c)),
    )


# Reconciliation --------------------------------------------------------------------------------


def reconcile_rows(r: Reconciliation) -> list[Cells]:
    rows: list[Cells] = [
        (x.layer_type, str(x.layers), num(x.resviz_macs), num(x.resviz_elementwise), num(x.fvcore),
         num(x.torchinfo), num(x.flop_counter), x.explanation)
        for x in r.rows
    ]
    t = r.totals
    rows.append(("total", "", num(t.get("resviz_macs")), num(t.get("resviz_elementwise")), num(t.get("fvcore")),
                 num(t.get("torchinfo")), num(t.get("flop_counter")), ""))
    return rows


def reconcile_headline(r: Reconciliation) -> Pairs:
    """Model, input, resviz's total MACs and each counter's total, the counters' versions."""
    t = r.totals
    totals = (f"resviz {num(t.get('resviz_macs'))} MACs, fvcore {num(t.get('fvcore'))}, "
              f"torchinfo {num(t.get('torchinfo'))}, FlopCounterMode {num(t.get('flop_counter'))}")
    return [
        ("model", r.model),
        ("input", shape_str(r.input_shape)),
        ("totals", totals),
        ("versions", ", ".join(f"{k} {v}" for k, v in r.versions.items())),
    ]


def reconcile_html(r: Reconciliation) -> str:
    """A :class:`Reconciliation`: resviz beside fvcore, torchinfo and FlopCounterMode per layer type."""
    return card(
        "counters side by side", r.model,
        headline_table(reconcile_headline(r)),
        table(("layer type", "layers", "resviz MACs", "resviz elementwise", "fvcore", "torchinfo",
               "FlopCounterMode", "why they differ"), reconcile_rows(r), edge=50, left=(0, 7)),
    )


def _view(kind: str, html_view: Callable[[Any], str], headline: Callable[[Any], Pairs]) -> View:
    return View(html=html_view, text=lambda record: one_line(kind, headline(record)))


VIEWS: dict[type, View] = {
    Summary: _view("Summary", summary_html, summary_headline),
    Trace: _view("Trace", trace_html, trace_headline),
    MonitorSeries: _view("MonitorSeries", monitor_html, monitor_headline),
    Comparison: _view("Comparison", comparison_html, comparison_headline),
    Reconciliation: _view("Reconciliation", reconcile_html, reconcile_headline),
}
"""Each displayable record class and how it shows: HTML, and one line of text."""


def register() -> None:
    """Make every record class in :data:`VIEWS` show through its view in notebooks (idempotent)."""
    for kind, view in VIEWS.items():
        register_view(kind, view)


__all__ = [
    "EDGE_ROWS", "MAX_NOTES", "VIEWS", "block_rows", "bounded", "comparison_html", "esc", "first_nonfinite",
    "gradient_span", "headline_table", "mean_skip_share", "monitor_headline", "monitor_html", "one_line",
    "reconcile_headline", "reconcile_html", "register", "summary_headline", "summary_html", "table",
    "trace_headline", "trace_html",
]
