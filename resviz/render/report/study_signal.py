"""Figures and findings of the signal-propagation and shattered-gradients studies.

Figures are returned, never shown or saved. Findings are plain sentences, each computed from the
numbers of the record it is given, set against what the papers predict:

* Signal Propagation Plots (Brock, De, Smith 2021, arXiv:2101.08692, Sec. 3; De & Smith 2020,
  arXiv:2002.10444): in a normalised pre-activation ResNet the shortcut carries x_l unchanged and
  each branch adds about unit variance, so the block output's variance grows about linearly with
  depth inside a stage and resets where a projection shortcut starts the next stage, with branch
  variance near 1; in a post-activation net (ReLU after the addition) and in a plain net every
  block ends in a normalisation or activation, so the variance does not build up with depth.
* Shattered gradients (Balduzzi et al. 2017, arXiv:1702.08591): gradients of plain nets decorrelate
  with depth towards white noise (correlation decaying as 2^-depth), those of residual nets much
  less (as 1/sqrt(depth)).

Thresholds that turn numbers into words are named constants below, so a sentence can be traced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

from resviz.extras import missing
from resviz.records.signal import BatchNormMode, ShatterModel, ShatterStudy, SignalModel, SignalStudy
from resviz.render import theme
from resviz.render.format import sig
from resviz.render.plot_style import finite
from resviz.render.report.plots import report_layout

try:
    import plotly.graph_objects as go
except ImportError as exc:  # Plotly comes with the 'reports' extra
    raise missing(exc, "reports", "study figures") from None

LINEAR_R2 = 0.9
"""A stage's variance "grows about linearly" when a straight-line fit against the block index has
R^2 at least this, a positive slope, and the stage ends at least :data:`GROWTH` times its start."""

GROWTH = 1.5
"""Last / first variance in a stage above which the variance counts as growing; below it (and
above 1 / GROWTH) the stage counts as flat."""

RESET = 0.5
"""A stage transition "resets" the variance when the new stage's first block has at most this
fraction of the previous stage's last block's variance."""

NEAR_ONE = (0.5, 2.0)
"""Branch variance counts as "near 1" when every block's lies in this range."""

WHITE = 0.1
"""Lag-1 autocorrelation below which a gradient sequence is called white-noise-like."""

# ---------------------------------------------------------------------------------------------
# Signal propagation


def stage_runs(m: SignalModel) -> list[tuple[str, list[int]]]:
    """Consecutive runs of blocks in one stage: ``[(stage, [block indices]), ...]`` in order."""
    runs: list[tuple[str, list[int]]] = []
    for i, b in enumerate(m.blocks):
        if runs and runs[-1][0] == b.stage:
            runs[-1][1].append(i)
        else:
            runs.append((b.stage, [i]))
    return runs


def line_fit(ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of ``ys`` against 0, 1, 2, ... and the fit's R^2 (nan for fewer than
    3 points or a constant ``ys``)."""
    n = len(ys)
    if n < 3:
        return math.nan, math.nan
    mx, my = (n - 1) / 2, sum(ys) / n
    sxx = sum((i - mx) ** 2 for i in range(n))
    sxy = sum((i - mx) * (y - my) for i, y in enumerate(ys))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    return slope, (sxy * sxy / (sxx * syy) if syy > 0 else math.nan)


def _trend(ys: Sequence[float]) -> str:
    """``linear``, ``flat``, ``falling`` or ``irregular``, from the thresholds above."""
    slope, r2 = line_fit(ys)
    ratio = ys[-1] / ys[0] if ys[0] > 0 else math.inf
    if slope > 0 and r2 >= LINEAR_R2 and ratio >= GROWTH:
        return "linear"
    if 1 / GROWTH <= ratio <= GROWTH and max(ys) <= GROWTH * min(ys):
        return "flat"
    return "falling" if ratio < 1 / GROWTH else "irregular"


def _stage_sentence(m: SignalModel, stage: str, idx: list[int]) -> tuple[str, str]:
    ys = [m.blocks[i].avg_var for i in idx]
    if len(ys) < 3:
        span = f"{sig(ys[0])} -> {sig(ys[-1])}"
        return "short", f"{m.name} {stage}: {len(ys)} block(s), variance {span} (too few to fit)."
    slope, r2 = line_fit(ys)
    trend = _trend(ys)
    words = {"linear": "grows about linearly", "flat": "stays flat", "falling": "falls",
             "irregular": "changes without a clear linear trend"}[trend]
    return trend, (
        f"{m.name} {stage}: average channel variance {words}, {sig(ys[0])} -> {sig(ys[-1])} over {len(ys)} "
        f"blocks (slope {sig(slope)} per block, R^2 {sig(r2)})."
    )


def _transitions(m: SignalModel, runs: list[tuple[str, list[int]]]) -> list[tuple[float, float]]:
    """(last variance of a stage, first variance of the next) at each stage transition."""
    return [(m.blocks[a[-1]].avg_var, m.blocks[b[0]].avg_var) for (_, a), (_, b) in pairwise(runs)]


def _transition_sentence(m: SignalModel, steps: list[tuple[float, float]]) -> tuple[list[bool], str]:
    resets = [after <= RESET * before for before, after in steps]
    listed = ", ".join(f"{sig(before)} -> {sig(after)}" for before, after in steps)
    return resets, (f"{m.name}: at the {len(steps)} stage transitions the variance goes {listed}; "
                    f"{sum(resets)} reset it (new stage's first block at most {RESET} x the last).")


def _branch_sentence(m: SignalModel) -> tuple[bool, str]:
    vs = [b.branch_var for b in m.blocks if math.isfinite(b.branch_var)]
    if not vs:
        return False, f"{m.name}: no branch variance measured."
    near = all(NEAR_ONE[0] <= v <= NEAR_ONE[1] for v in vs)
    what = "branch (plain net: the whole block)" if not m.residual else "residual branch"
    return near, (
        f"{m.name}: {what} variance mean {sig(sum(vs) / len(vs))}, range {sig(min(vs))}-{sig(max(vs))}: "
        f"{'near 1' if near else 'not near 1'} (every block within {NEAR_ONE[0]}-{NEAR_ONE[1]}: "
        f"{'yes' if near else 'no'})."
    )


def _verdict(m: SignalModel, trends: list[str], resets: list[bool], branch_near: bool) -> str:
    fitted = [t for t in trends if t != "short"]
    if m.residual and m.preact is None:
        return f"{m.name}: its blocks do not say whether they are pre- or post-activation: no prediction checked."
    if m.residual and m.preact:
        expected = "variance growing about linearly inside each stage, resetting at transitions, branch variance near 1"
        misses = [
            *([f"{sum(t != 'linear' for t in fitted)} of {len(fitted)} stages not linear"]
              if any(t != "linear" for t in fitted) else []),
            *([f"{sum(not r for r in resets)} of {len(resets)} transitions without a reset"]
              if not all(resets) else []),
            *(["branch variance not near 1"] if not branch_near else []),
        ]
    else:
        family = "post-activation net, ReLU after the addition" if m.residual else "plain net, no shortcut"
        expected = f"output re-normalised each block, no build-up of variance with depth ({family})"
        misses = [f"{sum(t == 'linear' for t in fitted)} of {len(fitted)} stages grow linearly"] \
            if any(t == "linear" for t in fitted) else []
    if not misses:
        return f"{m.name}: matches the prediction ({expected})."
    return f"{m.name}: differs from the prediction ({expected}): {'; '.join(misses)}."


def signal_findings(study: SignalStudy) -> list[str]:
    """Per model: each stage's variance trend (slope, R^2), stage transitions, branch variance,
    and whether that matches the papers' prediction for its family."""
    out = [f"BatchNorm in {study.bn_mode.value} mode; N(0, 1) input batch {'x'.join(map(str, study.input_shape))}, "
           f"seed {study.seed}."]
    for m in study.models:
        if not m.blocks:
            out.append(f"{m.name}: no residual blocks found.")
            continue
        runs = stage_runs(m)
        pairs = [_stage_sentence(m, s, idx) for s, idx in runs]
        out.extend(text for _, text in pairs)
        resets: list[bool] = []
        steps = _transitions(m, runs)
        if steps:
            resets, text = _transition_sentence(m, steps)
            out.append(text)
        near, text = _branch_sentence(m)
        out.append(text)
        out.append(_verdict(m, [t for t, _ in pairs], resets, near))
    return out


def _spp(m: SignalModel) -> go.Figure:
    fig = go.Figure()
    x = list(range(1, len(m.blocks) + 1))
    names = [f"{b.name} ({b.stage})" for b in m.blocks]
    for field, label, color in (("avg_var", "average channel variance", theme.MAIN_COLOR),
                                ("avg_sq_mean", "average squared channel mean", theme.SKIP_COLOR),
                                ("branch_var", "residual branch variance", theme.TOTAL_COLOR)):
        fig.add_scatter(
            x=x, y=[finite(getattr(b, field)) for b in m.blocks], mode="lines+markers", name=label,
            line={"color": color, "dash": "dot" if field == "branch_var" else "solid"}, text=names,
            hovertemplate="%{text}<br>%{y:.4g}<extra>" + label + "</extra>",
        )
    for _, idx in stage_runs(m)[1:]:
        fig.add_vline(x=idx[0] + 0.5, line={"color": "#999999", "dash": "dot"})
    return report_layout(fig, f"Signal propagation in {m.name} at initialisation", "block (input -> output)", "value")


def _overlay(study: SignalStudy) -> go.Figure:
    fig = go.Figure()
    for i, m in enumerate(study.models):
        fig.add_scatter(
            x=list(range(1, len(m.blocks) + 1)), y=[finite(b.avg_var) for b in m.blocks], mode="lines",
            name=m.name, line={"color": theme.model_color(i)}, text=[f"{b.name} ({b.stage})" for b in m.blocks],
            hovertemplate="%{text}<br>variance %{y:.4g}<extra>" + m.name + "</extra>",
        )
    return report_layout(fig, "Average channel variance of block outputs, all models", "block (input -> output)",
                   "average channel variance")


def signal_figures(study: SignalStudy) -> list[go.Figure]:
    """One Signal Propagation Plot per model (stage boundaries dotted), then every model's average
    channel variance overlaid."""
    return [*(_spp(m) for m in study.models), _overlay(study)]


# ---------------------------------------------------------------------------------------------
# Shattered gradients

_DASH = {BatchNormMode.EVAL: "solid", BatchNormMode.TRAIN: "dash"}


def _label(m: ShatterModel) -> str:
    return f"{m.name} ({m.mode.value} BN)"


def _colors(study: ShatterStudy) -> dict[str, str]:
    names = list(dict.fromkeys(m.name for m in study.models))
    return {n: theme.model_color(i) for i, n in enumerate(names)}


def shatter_figures(study: ShatterStudy) -> list[go.Figure]:
    """Autocorrelation of the input gradients against lag (per model and BatchNorm mode), and the
    neighbour correlation as grouped bars (one group per model, one bar per mode)."""
    colors = _colors(study)
    acf = go.Figure()
    for m in study.models:
        acf.add_scatter(x=list(range(len(m.autocorrelation))), y=[finite(v) for v in m.autocorrelation],
                        mode="lines", name=_label(m), line={"color": colors[m.name], "dash": _DASH[m.mode]})
    acf.add_hline(y=0.0, line={"color": "#999999", "dash": "dot"})
    report_layout(acf, f"Autocorrelation of input gradients along a line of {study.points} points", "lag (points)",
            "autocorrelation R(lag)")
    bars = go.Figure()
    for mode in BatchNormMode:
        rows = [m for m in study.models if m.mode is mode]
        if rows:
            bars.add_bar(x=[m.name for m in rows], y=[finite(m.neighbor_correlation) for m in rows],
                         name=f"{mode.value} BN", marker={"color": [colors[m.name] for m in rows]},
                         marker_pattern_shape="/" if mode is BatchNormMode.TRAIN else "")
    report_layout(bars, "Neighbour correlation: mean cosine of consecutive gradients", "model", "mean cosine")
    bars.update_layout(barmode="group")
    return [acf, bars]


def _first_below(acf: Sequence[float], level: float) -> int | None:
    return next((k for k, v in enumerate(acf) if math.isfinite(v) and v < level), None)


def _model_sentence(m: ShatterModel) -> str:
    r1 = m.autocorrelation[1] if len(m.autocorrelation) > 1 else math.nan
    half = _first_below(m.autocorrelation, 0.5)
    decay = f"falls below 0.5 at lag {half}" if half is not None else \
        f"stays at or above 0.5 up to lag {len(m.autocorrelation) - 1}"
    white = " (white-noise-like)" if math.isfinite(r1) and r1 < WHITE else ""
    kind = "residual" if m.residual else "plain"
    return (f"{_label(m)}, {kind}, {m.blocks} blocks: neighbour correlation {sig(m.neighbor_correlation)}, "
            f"autocorrelation at lag 1 {sig(r1)}{white}, {decay}; gradient norm mean {sig(m.grad_norm_mean)} "
            f"(range {sig(m.grad_norm_min)}-{sig(m.grad_norm_max)}).")


def _compare(study: ShatterStudy, mode: BatchNormMode) -> list[str]:
    rows = [m for m in study.models if m.mode is mode and math.isfinite(m.neighbor_correlation)]
    res = [m for m in rows if m.residual]
    plain = [m for m in rows if not m.residual]
    out = []
    if res and plain:
        r = sum(m.neighbor_correlation for m in res) / len(res)
        p = sum(m.neighbor_correlation for m in plain) / len(plain)
        verdict = "as the paper predicts" if r > p else "unlike the paper's prediction"
        out.append(f"{mode.value} BN: residual nets keep neighbouring gradients {'more' if r > p else 'less'} "
                   f"correlated than plain nets (mean neighbour correlation {sig(r)} vs {sig(p)}), {verdict}.")
    for group, kind in ((plain, "plain"), (res, "residual")):
        by_depth = sorted(group, key=lambda m: m.blocks)
        if len({m.blocks for m in by_depth}) < 2:
            continue
        falls = all(b.neighbor_correlation < a.neighbor_correlation
                    for i, a in enumerate(by_depth) for b in by_depth[i + 1:] if b.blocks > a.blocks)
        series = ", ".join(f"{m.name} {sig(m.neighbor_correlation)}" for m in by_depth)
        out.append(f"{mode.value} BN, {kind} nets by depth: {series}: "
                   f"{'lower in every deeper net' if falls else 'not lower in every deeper net'}.")
    return out


def shatter_findings(study: ShatterStudy) -> list[str]:
    """Per model and mode: neighbour correlation, lag-1 autocorrelation and decay; then residual
    against plain nets and each family against depth, set against Balduzzi et al.'s prediction."""
    out = [f"Gradient of logit {study.output_index} along a line of {study.points} points of "
           f"{'x'.join(map(str, study.input_shape))}, seed {study.seed}; train-mode BatchNorm gradients: "
           f"{study.train_gradient.value}."]
    out.extend(_model_sentence(m) for m in study.models)
    for mode in BatchNormMode:
        out.extend(_compare(study, mode))
    return out


__all__ = [
    "GROWTH", "LINEAR_R2", "NEAR_ONE", "RESET", "WHITE", "line_fit", "shatter_figures", "shatter_findings",
    "signal_figures", "signal_findings", "stage_runs",
]
