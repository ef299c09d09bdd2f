"""Figures and findings of the paths and lesion studies (Veit, Wilber, Belongie 2016, arXiv:1605.06431).

* :func:`paths_figures`: Fig. 6 of the paper: (a) how many paths of each length, (b) gradient norm
  reaching the input through paths of length k (log axis, standard errors as bars), (c) their
  product, the total contribution per length, with the effective range shaded.
* :func:`lesion_figures`: Fig. 3 and 5: held-out error with each block removed (downsampling
  blocks marked), and with growing random sets removed, one line per study (residual and plain).
* :func:`paths_findings` / :func:`lesion_findings`: sentences built from the measured numbers,
  next to what the paper reports.

Figures are returned, never shown or saved; the page shell and the surfaces place them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from resviz.extras import missing
from resviz.records.paths import LesionBlock, LesionStudy, PathLength, PathsStudy
from resviz.render import theme
from resviz.render.format import percent, sig
from resviz.render.plot_style import finite, positive
from resviz.render.report.plots import report_layout

try:
    import plotly.graph_objects as go
except ImportError as exc:  # Plotly comes with the 'reports' extra
    raise missing(exc, "reports", "a study report") from None

PAPER_PATHS = (
    "Veit et al. 2016 (arXiv:1605.06431, Sec. 5, Fig. 6) measured a trained ResNet-110 (54 blocks) on "
    "CIFAR-10: almost all gradient comes from paths of length 5 to 17, only 0.45% of all paths, and the "
    "gradient a path carries falls exponentially with its length."
)
PAPER_LESION = (
    "Veit et al. 2016 (arXiv:1605.06431, Sec. 4, Fig. 3-5): removing single blocks from a trained "
    "ResNet-110 barely changes its CIFAR-10 error except at downsampling blocks, removing a layer of a "
    "plain VGG net breaks it, and the error rises smoothly as more blocks are removed."
)


# --- paths --------------------------------------------------------------------------------------


def path_counts(study: PathsStudy) -> go.Figure:
    """Fig. 6(a): number of paths of each length, C(n, k) (a binomial distribution)."""
    fig = go.Figure()
    rows = study.lengths
    fig.add_bar(x=[r.k for r in rows], y=[float(r.paths) for r in rows], marker={"color": theme.MAIN_COLOR},
                text=[str(r.paths) for r in rows], textposition="none", name="paths",
                hovertemplate="length %{x}: %{text} paths<extra></extra>")
    return report_layout(fig, f"{study.model}: distribution of path lengths ({study.n} blocks, 2^{study.n} paths)",
                   "path length k (residual branches on the path)", "number of paths C(n, k)")


def path_gradients(study: PathsStudy) -> go.Figure:
    """Fig. 6(b): mean gradient norm at the input through paths of length k, with standard errors."""
    rows = study.lengths
    fig = go.Figure()
    fig.add_scatter(
        x=[r.k for r in rows], y=[positive(r.grad_norm) for r in rows], mode="lines+markers", name="|dL/dx|",
        line={"color": theme.MAIN_COLOR},
        error_y={"type": "data", "array": [finite(r.grad_norm_err) or 0.0 for r in rows], "visible": True},
        customdata=[r.samples for r in rows],
        hovertemplate="length %{x}: %{y:.4g} (%{customdata} subsets)<extra></extra>",
    )
    return report_layout(fig, f"{study.model}: gradient norm at the input per path length", "path length k",
                   "mean |dL/dx| through one path (log)", log_y=True)


def path_contributions(study: PathsStudy) -> go.Figure:
    """Fig. 6(c): C(n, k) x gradient norm per length; the effective range shaded."""
    rows = study.lengths
    lo, hi = study.effective_range
    fig = go.Figure()
    fig.add_vrect(x0=lo - 0.5, x1=hi + 0.5, fillcolor=theme.SKIP_COLOR, opacity=0.15, line_width=0,
                  annotation_text=f"effective {lo}-{hi}", annotation_position="top left")
    fig.add_bar(x=[r.k for r in rows], y=[finite(r.contribution) for r in rows], name="contribution",
                marker={"color": theme.MAIN_COLOR},
                hovertemplate="length %{x}: %{y:.4g}<extra></extra>")
    share = percent(study.settings.fraction)
    return report_layout(fig, f"{study.model}: total gradient contribution per path length (shaded: {share} of it)",
                   "path length k", "paths x mean |dL/dx|")


def paths_figures(study: PathsStudy) -> list[go.Figure]:
    """Veit et al. 2016, Fig. 6 (a), (b), (c) for ``study``."""
    return [path_counts(study), path_gradients(study), path_contributions(study)]


def _decay(rows: Sequence[PathLength]) -> float | None:
    """exp of the least-squares slope of log(grad_norm) against k: the factor by which one more
    residual branch on a path scales its gradient (None with fewer than two positive values)."""
    pts = [(r.k, math.log(r.grad_norm)) for r in rows if positive(r.grad_norm) is not None]
    if len(pts) < 2:
        return None
    mk = sum(k for k, _ in pts) / len(pts)
    mv = sum(v for _, v in pts) / len(pts)
    den = sum((k - mk) ** 2 for k, _ in pts)
    if den == 0:
        return None
    return math.exp(sum((k - mk) * (v - mv) for k, v in pts) / den)


def paths_findings(study: PathsStudy) -> list[str]:
    """Sentences from the measured numbers of ``study``, then the paper's for comparison."""
    n, rows = study.n, study.lengths
    lo, hi = study.effective_range
    total = math.fsum(r.contribution for r in rows)
    inside = math.fsum(r.contribution for r in rows if lo <= r.k <= hi)
    share_paths = sum(math.comb(n, k) for k in range(lo, hi + 1)) / 2**n
    out = [
        f"Measured on {study.model} (weights: {study.settings.weights}) with input "
        f"{'x'.join(map(str, study.settings.input_shape))}, {study.settings.samples_per_k} random subsets "
        f"per path length.",
        f"{study.model} has {n} residual blocks, so 2^{n} paths; their lengths follow the binomial "
        f"distribution C({n}, k), most of them near length {n // 2}.",
    ]
    if total > 0 and math.isfinite(total):
        out.append(
            f"Paths of length {lo} to {hi} carry {percent(inside / total)} of the summed gradient "
            f"contribution (paths x mean gradient norm), yet are {sig(100 * share_paths)}% of all paths."
        )
    decay = _decay(rows)
    if decay is not None:
        first, last = rows[0], rows[-1]
        out.append(
            f"The mean gradient norm through one path goes from {sig(first.grad_norm)} at length {first.k} to "
            f"{sig(last.grad_norm)} at length {last.k}; a log-linear fit gives a factor of {sig(decay)} per "
            f"extra residual branch on the path."
        )
    out.extend(_sampling(study))
    out.append(PAPER_PATHS)
    return out


def _relative_err(r: PathLength) -> float:
    return r.grad_norm_err / r.grad_norm if r.grad_norm > 0 else 0.0


def _sampling(study: PathsStudy) -> list[str]:
    """The largest relative standard error, inside the effective range and over all lengths."""
    lo, hi = study.effective_range
    inside = [r for r in study.lengths if lo <= r.k <= hi]
    worst, worst_in = max(study.lengths, key=_relative_err), max(inside, key=_relative_err, default=None)
    if _relative_err(worst) == 0:
        return ["Every path length was measured exhaustively: no sampling error."]
    where = "" if worst_in is None else (
        f"within the effective range at most {percent(_relative_err(worst_in))} (length {worst_in.k}); ")
    return [f"Sampling error (standard error / mean, {study.settings.samples_per_k} subsets per length): {where}"
            f"over all lengths at most {percent(_relative_err(worst))} (length {worst.k})."]


# --- lesion -------------------------------------------------------------------------------------


def _block_trace(fig: go.Figure, study: LesionStudy, i: int) -> None:
    rows = study.blocks
    names = [r.name for r in rows]
    color = theme.model_color(i)
    marker = {"symbol": [_symbol(r) for r in rows], "size": [_size(r) for r in rows]}
    fig.add_scatter(x=names, y=[finite(r.error) for r in rows], mode="lines+markers", name=study.model,
                    line={"color": color}, marker=marker,
                    hovertemplate="%{x}: error %{y:.3f}<extra>" + study.model + "</extra>")
    fig.add_hline(y=study.baseline.error, line={"color": color, "dash": "dot"},
                  annotation_text=f"{study.model} unlesioned", annotation_position="bottom right")
    fixed = [r.name for r in rows if not r.removable]
    if fixed:
        fig.add_scatter(x=fixed, y=[0.0] * len(fixed), mode="markers", name=f"{study.model}: cannot be removed",
                        marker={"symbol": "x-thin-open", "size": 12, "color": color})


def _symbol(r: LesionBlock) -> str:
    return "diamond" if r.downsampling else "circle"


def _size(r: LesionBlock) -> int:
    return 11 if r.downsampling else 6


def lesion_blocks(studies: Sequence[LesionStudy]) -> go.Figure:
    """Fig. 3: held-out error with one block removed; diamonds mark downsampling blocks."""
    fig = go.Figure()
    for i, s in enumerate(studies):
        _block_trace(fig, s, i)
    fig.update_xaxes(type="category")
    return report_layout(fig, "Error with one block removed (diamonds: downsampling blocks)", "removed block",
                   "held-out error")


def lesion_sets(studies: Sequence[LesionStudy]) -> go.Figure:
    """Fig. 5: held-out error against the number of blocks removed at random (mean and its standard
    error over the draws; 0 = unlesioned)."""
    fig = go.Figure()
    for i, s in enumerate(studies):
        kind = "plain" if s.plain else "residual"
        fig.add_scatter(
            x=[0] + [r.k for r in s.sets], y=[s.baseline.error] + [finite(r.error) for r in s.sets],
            error_y={"type": "data", "array": [0.0] + [finite(r.error_err) or 0.0 for r in s.sets], "visible": True},
            mode="lines+markers", name=f"{s.model} ({kind})", line={"color": theme.model_color(i)},
        )
    return report_layout(fig, "Error with random sets of blocks removed", "blocks removed", "held-out error")


def lesion_figures(*studies: LesionStudy) -> list[go.Figure]:
    """Veit et al. 2016, Fig. 3 and 5 for one study or several (a residual net and its plain twin)."""
    return [lesion_blocks(studies), lesion_sets(studies)]


def _mean(values: Sequence[float]) -> float | None:
    vals = [v for v in values if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def lesion_findings(study: LesionStudy) -> list[str]:
    """Sentences from the measured numbers of ``study``, then the paper's for comparison."""
    base = study.baseline
    out = [f"{study.model} unlesioned: held-out error {percent(base.error)}, loss {sig(base.loss)} "
           f"({study.settings.held_out} images)."]
    rows = [r for r in study.blocks if r.removable]
    for label, group in (("a non-downsampling block", [r for r in rows if not r.downsampling]),
                         ("a downsampling block", [r for r in rows if r.downsampling])):
        mean = _mean([r.error for r in group])
        if mean is None:
            continue
        worst = max(group, key=lambda r: r.error)
        out.append(f"Removing {label} gives {percent(mean)} error on average over {len(group)} (worst: "
                   f"{worst.name}, {percent(worst.error)}).")
    fixed = [r.name for r in study.blocks if not r.removable]
    if fixed:
        out.append(f"{len(fixed)} block(s) change the shape without a shortcut and cannot be removed.")
    if study.sets:
        last = study.sets[-1]
        out.append(f"Removing {last.k} random block(s) at once gives {percent(last.error)} error "
                   f"(+/- {percent(last.error_err)} over {last.seeds} draws); " + _smooth(study) + ".")
    out.append(PAPER_LESION)
    return out


def _smooth(study: LesionStudy) -> str:
    """How the mean error moves as more blocks are removed (Fig. 5 reads it as smooth)."""
    errors = [study.baseline.error] + [r.error for r in study.sets]
    dips = sum(1 for a, b in itertools.pairwise(errors) if b < a - 1e-12)
    if not dips:
        return "the mean error rises with every block removed"
    if errors[-1] <= errors[0]:
        return "the mean error does not rise with the number of blocks removed"
    return (f"the mean error rises overall but falls {dips} time(s) from one set size to the next "
            "(random draws: see the error bars)")


__all__ = [
    "PAPER_LESION", "PAPER_PATHS", "lesion_blocks", "lesion_figures", "lesion_findings", "lesion_sets",
    "path_contributions", "path_counts", "path_gradients", "paths_figures", "paths_findings",
]
