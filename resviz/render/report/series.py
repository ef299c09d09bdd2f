"""The report of one monitored training run (a :class:`~resviz.records.MonitorSeries`).

What the comparison report shows for several models at a glance, this shows for one run over its
steps: how the gradient at each block input, and the share of it the shortcut carries, evolve as
the network trains (He et al. 2016, arXiv:1603.05027: the identity shortcut gives every block a
direct copy of the gradient from the output). The HTML page (:mod:`resviz.render.report.series_html`,
the ``reports`` extra) holds the figures; the Markdown the same tables; JSON is the series itself.

A series is drawn only when it can be read as a run: two or more snapshots at increasing steps,
every snapshot recording the same blocks, and every number finite (:func:`check_series`); anything
else is refused in one line, before a file is written.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence

from resviz.errors import ResvizError, clip
from resviz.extras import require
from resviz.records import BlockStats, MonitorSeries, StepStats
from resviz.render.report.formats import ReportFormat
from resviz.render.report.markdown import table_md, text_md
from resviz.render.report.tables import Table, num

#: What the one-line error says needs the ``reports`` extra (as for a comparison's HTML report).
SERIES_HTML_FEATURE = "an HTML report"

#: The block numbers a report draws, checked finite.
DRAWN = ("main_rms", "skip_rms", "grad_main", "grad_skip", "grad_total")


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


def _check_block_values(snap: StepStats) -> None:
    for b in snap.blocks:
        for field in DRAWN:
            value = getattr(b, field)
            if not _finite(value):
                raise ResvizError(f"{field} of block {clip(b.label)} at step {snap.step} is {num(value)}: the report "
                                  "draws finite numbers only")


def check_series(series: MonitorSeries) -> None:
    """Refuse in one line a series the report cannot draw as a run over steps."""
    snaps = series.snapshots
    if not snaps:
        raise ResvizError("the series holds no snapshots: monitor at least two training steps")
    if len(snaps) == 1:
        raise ResvizError(f"the series holds one snapshot (step {snaps[0].step}): a report over steps needs two "
                          "or more")
    names = [b.label for b in snaps[0].blocks]
    if not names:
        raise ResvizError("the series records no residual blocks")
    for prev, snap in itertools.pairwise(snaps):
        if snap.step <= prev.step:
            raise ResvizError(f"the series' steps do not increase: step {snap.step} follows step {prev.step}")
        if [b.label for b in snap.blocks] != names:
            raise ResvizError(f"the snapshots at steps {prev.step} and {snap.step} record different blocks")
    for snap in snaps:
        if not _finite(snap.loss):
            raise ResvizError(f"the loss at step {snap.step} is {num(snap.loss)}: the report draws finite numbers only")
        _check_block_values(snap)
    for step, loss in zip(series.loss_steps, series.loss_values, strict=False):
        if not math.isfinite(loss):
            raise ResvizError(f"the loss at step {step} is {num(loss)}: the report draws finite numbers only")


# -- numbers shared by the HTML and Markdown pages ---------------------------------------------------------


def losses(series: MonitorSeries) -> tuple[list[int], list[float]]:
    """The loss curve: every logged loss, or the snapshots' own where none was logged."""
    if series.loss_steps:
        return list(series.loss_steps), list(series.loss_values)
    pairs = [(s.step, s.loss) for s in series.snapshots if s.loss is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def ratio_grid(series: MonitorSeries) -> list[list[float | None]]:
    """``rows[block][snapshot]`` of grad_main / grad_skip (None where the shortcut carries none)."""
    return [[snap.blocks[i].grad_ratio for snap in series.snapshots] for i in range(len(series.block_names))]


def share_grid(series: MonitorSeries) -> list[list[float | None]]:
    """``rows[block][snapshot]`` of the shortcut's share of the gradient, grad_skip / (main + skip)."""
    return [[snap.blocks[i].skip_share for snap in series.snapshots] for i in range(len(series.block_names))]


def block_labels(series: MonitorSeries) -> list[str]:
    """Each block's name as tables and axes show it (a second call in one forward as ``(call 2)``)."""
    return [b.label for b in series.snapshots[0].blocks]


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _first_last(snap: StepStats) -> float | None:
    first, last = snap.blocks[0].grad_total, snap.blocks[-1].grad_total
    return first / last if first is not None and last else None


def settings_table(series: MonitorSeries) -> Table:
    """How the run was recorded, one setting per row."""
    steps = series.steps
    loss_steps, _ = losses(series)
    rows = [
        ["model", series.model],
        ["every", f"{num(series.every)} (a snapshot every {num(series.every)} training steps)"],
        ["steps", f"{num(len(steps))} snapshots, steps {num(steps[0])} to {num(steps[-1])}"],
        ["loss", f"{num(len(loss_steps))} points" if loss_steps else "not logged"],
        ["blocks", num(len(series.block_names))],
    ]
    return ["setting", "value"], rows


def snapshot_table(series: MonitorSeries) -> Table:
    """One row per snapshot: the loss, the gradient at the first and the last block, their ratio
    and the shortcut's mean share of the gradient."""
    header = ["step", "loss", "grad first block", "grad last block", "first / last", "mean skip share"]
    rows = [
        [num(s.step), num(s.loss), num(s.blocks[0].grad_total), num(s.blocks[-1].grad_total), num(_first_last(s)),
         num(_mean([b.skip_share for b in s.blocks]))]
        for s in series.snapshots
    ]
    return header, rows


def block_table(series: MonitorSeries) -> Table:
    """Every block at the last snapshot."""
    header = ["block", "stage", "shortcut", "grad main", "grad skip", "grad total", "skip share", "main / skip",
              "main rms", "skip rms"]
    rows = [_block_row(b) for b in series.snapshots[-1].blocks]
    return header, rows


def _block_row(b: BlockStats) -> list[str]:
    return [b.label, b.stage, b.shortcut, num(b.grad_main), num(b.grad_skip), num(b.grad_total), num(b.skip_share),
            num(b.grad_ratio), num(b.main_rms), num(b.skip_rms)]


def title(series: MonitorSeries) -> str:
    return f"Training run: {series.model}"


# -- the formats -------------------------------------------------------------------------------------------


def render_series_markdown(series: MonitorSeries) -> str:
    """The run as Markdown: settings, the per-snapshot table and the last snapshot's blocks."""
    check_series(series)
    last = series.steps[-1]
    out = [f"# {text_md(title(series))}", "", "## Run settings", "", table_md(settings_table(series)), "",
           "## Per snapshot", "", table_md(snapshot_table(series)), "",
           f"## Every block at step {last}", "", table_md(block_table(series)), ""]
    return "\n".join(out)


def check_series_html() -> None:
    """Refuse in one line when Plotly (the ``reports`` extra) is missing, before any work."""
    require("plotly", "reports", SERIES_HTML_FEATURE)


def render_series_html(series: MonitorSeries) -> str:
    """The run as one self-contained HTML page (:mod:`resviz.render.report.series_html`)."""
    check_series(series)
    check_series_html()
    # Imported here: Plotly is an optional extra, and Markdown and JSON reports do without it.
    from resviz.render.report.series_html import render_page

    return render_page(series)


def render_series(series: MonitorSeries, fmt: ReportFormat) -> str:
    """The whole text of the run's report in ``fmt``; JSON is the series itself."""
    if fmt is ReportFormat.HTML:
        return render_series_html(series)
    if fmt is ReportFormat.MARKDOWN:
        return render_series_markdown(series)
    check_series(series)
    return json.dumps(series.to_dict(), indent=1, allow_nan=False)


__all__ = [
    "SERIES_HTML_FEATURE", "block_table", "check_series", "check_series_html", "losses", "ratio_grid",
    "render_series", "render_series_html", "render_series_markdown", "settings_table", "share_grid",
    "snapshot_table",
]
