"""Colour-by metrics (MACs, parameters, activation std, gradient ratio) read from records.

Measured metrics come from a :class:`~resviz.records.Trace` (a live one, or one loaded back from
JSON): records are the layer below the renderers, so the diagrams read them directly and never
import the tracer. Values spanning orders of magnitude (MACs, parameters, gradient ratios) are
placed on a log scale, so the one 7x7 stem convolution does not wash out every other node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from resviz.errors import ResvizError
from resviz.records import BlockStats, LayerRecord, Summary, Trace
from resviz.render import theme
from resviz.render.diagrams._style import NA_FILL
from resviz.render.diagrams.views import ColorBy, color_by_key
from resviz.render.format import human, sci


def grad_ratio(b: BlockStats) -> float | None:
    """The block's main / skip gradient ratio where both norms are finite: an overflowed (or NaN)
    norm would give a ratio of 0, NaN or inf, which has no colour on the scale and misleads as a label."""
    finite = all(v is not None and math.isfinite(v) for v in (b.grad_main, b.grad_skip))
    return b.grad_ratio if finite else None


def measured(b: BlockStats | None) -> bool:
    """True when a backward pass measured both branch gradients of this block."""
    return b is not None and b.grad_main is not None and b.grad_skip is not None


def check_color_by(color_by: str | None, trace: Trace | None) -> ColorBy | None:
    """Validate ``color_by``; ``std`` and ``grad-ratio`` are measurements and need a trace."""
    key = color_by_key(color_by)
    if key is not None and key.measured and trace is None:
        raise ResvizError(f"color-by {key} needs a trace (activation and gradient statistics): "
                          "pass trace=resviz.trace(model)")
    return key


@dataclass(frozen=True)
class ColorScale:
    """Maps metric values of the drawn nodes onto :data:`theme.SEQUENTIAL`."""

    metric: str
    lo: float
    hi: float
    log: bool

    @property
    def title(self) -> str:
        return {
            "macs": "MACs (conv + linear)",
            "params": "parameters",
            "std": "activation std (output)",
            "grad-ratio": "grad ratio |main| / |skip|",
        }[self.metric]

    def fraction(self, value: float) -> float:
        if self.hi <= self.lo:
            return 1.0
        if self.log:
            return (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (value - self.lo) / (self.hi - self.lo)

    def color(self, value: float | None) -> str:
        if value is None or not math.isfinite(value) or (self.log and value <= 0):
            return NA_FILL
        return theme.sequential_color(self.fraction(value))

    def legend_rows(self) -> list[tuple[str, str]]:
        """One row per colour with the value range it covers, plus the no-value fill."""
        n = len(theme.SEQUENTIAL)
        rows = []
        for i, color in enumerate(theme.SEQUENTIAL):
            a, b = self._at(i / n), self._at((i + 1) / n)
            rows.append((color, f"{self._fmt(a)} - {self._fmt(b)}"))
        rows.append((NA_FILL, "no value"))
        return rows

    def _at(self, f: float) -> float:
        if self.log:
            return float(10 ** (math.log10(self.lo) + f * (math.log10(self.hi) - math.log10(self.lo))))
        return self.lo + f * (self.hi - self.lo)

    def _fmt(self, v: float) -> str:
        return human(v) if self.metric in ("macs", "params") else sci(v)


def make_scale(metric: str | None, values: Sequence[float | None]) -> ColorScale | None:
    """A scale spanning the drawn values (ignoring missing ones and, on log scales, zeros)."""
    if metric is None:
        return None
    log = metric != "std"
    vals = [v for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if not vals:
        return ColorScale(metric, 1.0, 1.0, log)
    return ColorScale(metric, min(vals), max(vals), log)


class Metrics:
    """Looks up a metric for a group of layers, from the summary and (optionally) a trace.

    A drawn node stands for one or more *instances* (a folded run of identical blocks has one per
    block), each a list of layer names. Counts add up within an instance; activation std is that of
    the instance's last layer (the node's output); the gradient ratio is that of the block the
    layers belong to. Instances are averaged.
    """

    def __init__(
        self, summary: Summary, metric: str | None, trace: Trace | None,
        by_block: Mapping[str, Sequence[LayerRecord]],
    ) -> None:
        self.metric = metric
        self.layers: dict[str, LayerRecord] = {lr.name: lr for lr in summary.layers}
        self.by_block = by_block  # the summary's layers per block, as Context caches them
        layers = trace.layers if trace is not None else ()
        blocks = trace.blocks if trace is not None else ()
        self.std: dict[str, float] = {ls.name: float(ls.std) for ls in layers if ls.call == 1}
        self.ratio: dict[str, float | None] = {b.name: grad_ratio(b) for b in blocks if b.call == 1}

    def value(self, instances: Sequence[Sequence[str]]) -> float | None:
        if self.metric is None or not instances:
            return None
        got = [v for v in (self._one(names) for names in instances) if v is not None]
        return sum(got) / len(got) if got else None

    def block_value(self, blocks: Sequence[str]) -> float | None:
        """Metric of whole blocks (one instance per block)."""
        if self.metric == "grad-ratio":
            got = [r for r in (self.ratio.get(b) for b in blocks) if r is not None]
            return sum(got) / len(got) if got else None
        return self.value([[lr.name for lr in self.by_block.get(b, ())] for b in blocks])

    def _one(self, names: Sequence[str]) -> float | None:
        recs = [self.layers[n] for n in names if n in self.layers]
        if not recs:
            return None
        if self.metric == "macs":
            return float(sum(r.macs for r in recs))
        if self.metric == "params":
            return float(sum(r.params for r in recs))
        if self.metric == "std":
            return self.std.get(recs[-1].name)
        blocks = {r.block for r in recs if r.block}
        got = [r for r in (self.ratio.get(b) for b in sorted(blocks)) if r is not None]
        return sum(got) / len(got) if got else None
