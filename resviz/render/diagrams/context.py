"""What every view receives: the summary, the options, and lookups shared between views."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from resviz.errors import ResvizError, quote
from resviz.records import BlockRecord, BlockType, LayerRecord, ShortcutKind, Summary, Trace
from resviz.render.diagrams.blockgraph import layers_by_block
from resviz.render.diagrams.metrics import ColorScale, Metrics, make_scale
from resviz.render.diagrams.views import ColorBy, View


@dataclass
class Context:
    """Inputs of one diagram; views read from it and never mutate the summary or trace."""

    summary: Summary
    view: View
    depth: int | None = None
    metric: ColorBy | None = None
    trace: Trace | None = None
    block: str | None = None

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics(self.summary, self.metric, self.trace, self.by_block)

    @cached_property
    def by_block(self) -> dict[str, list[LayerRecord]]:
        return layers_by_block(self.summary)

    @property
    def residual_blocks(self) -> list[BlockRecord]:
        return [b for b in self.summary.blocks if b.shortcut != ShortcutKind.NONE]

    def stage_layers(self, stage: str) -> list[LayerRecord]:
        return [lr for lr in self.summary.layers if lr.stage == stage]

    def require_residual(self) -> None:
        """Block views explain skip connections: refuse a model that has none, in one line."""
        if not self.residual_blocks:
            what = "plain blocks without skip connections" if self.summary.blocks else "no residual blocks"
            raise ResvizError(
                f"the {self.view} view needs residual blocks, but {self.summary.model} has {what}; "
                "try a residual model such as resnet18 or resnet50"
            )

    def pick_block(self, kinds: tuple[BlockType, ...] = ()) -> BlockRecord:
        """The block a block view draws: ``block`` if given, else the first identity block of a kind."""
        cands = [b for b in self.residual_blocks if not kinds or b.kind in kinds]
        if self.block is not None:
            for b in self.summary.blocks:
                if b.name == self.block:
                    if kinds and b.kind not in kinds:
                        raise ResvizError(f"block {b.name} is a {b.kind} block, not {' or '.join(kinds)}")
                    return b
            names = ", ".join(b.name for b in self.summary.blocks[:4])
            raise ResvizError(f"{self.summary.model} has no block {quote(self.block)} (blocks are {names}, ...)")
        if not cands:
            have = sorted({b.kind for b in self.residual_blocks})
            other = "bottleneck" if kinds and BlockType.BASIC in kinds else "basic-block"
            raise ResvizError(
                f"{self.summary.model} has no {kinds[0]} blocks (it uses {', '.join(have)} blocks): "
                f"use --view {other}"
            )
        identity = [b for b in cands if b.shortcut == ShortcutKind.IDENTITY]
        return (identity or cands)[0]

    def scale_for(self, values: list[float | None]) -> ColorScale | None:
        """The colour scale for the values a view is about to draw (None when not colouring)."""
        return make_scale(self.metric, values)
