"""The closed sets that records use, as string enums.

They compare equal to their string values, so JSON written before they existed reads back as the
same records, and a record written now holds the same strings in its JSON.
"""

from __future__ import annotations

from enum import StrEnum


class ShortcutKind(StrEnum):
    """What one block's shortcut runs (He et al. 2015, Sec. 3.3 and 4.1).

    A network's shortcut option (:class:`resviz.spec.Shortcut`) decides this per block: option A
    gives identity, or zero-pad where the shape changes; B identity, or projection where the shape
    changes; C projection everywhere; a plain net none.
    """

    IDENTITY = "identity"
    PROJECTION = "projection"
    ZERO_PAD = "zero-pad"
    NONE = "none"
    POOLED = "pooled"
    """Pooling only (no parameters): a strided identity that keeps the channels."""
    POOLED_PROJECTION = "pooled-projection"
    """Average pooling, then a 1x1 projection: ResNet-D's downsampling shortcut (He et al. 2019,
    arXiv:1812.01187, Fig. 2c)."""


class Branch(StrEnum):
    """Where a layer sits in its residual block: the residual function F, the shortcut, or the
    addition that joins them; ``OUTSIDE`` for layers outside every block."""

    MAIN = "main"
    SKIP = "skip"
    JOIN = "join"
    OUTSIDE = ""


class BlockType(StrEnum):
    """A residual block's layout: basic (two 3x3) or bottleneck (1x1-3x3-1x1), post-activation as
    in He et al. 2015 or pre-activation (BN-ReLU-conv) as in He et al. 2016."""

    BASIC = "basic"
    BOTTLENECK = "bottleneck"
    PREACT_BASIC = "preact-basic"
    PREACT_BOTTLENECK = "preact-bottleneck"
    OTHER = "other"
    """Any other residual block: ViT's attention and MLP, ConvNeXt's, a user's own."""

    @property
    def preact(self) -> bool:
        return self in (BlockType.PREACT_BASIC, BlockType.PREACT_BOTTLENECK)

    @property
    def bottleneck(self) -> bool:
        return self in (BlockType.BOTTLENECK, BlockType.PREACT_BOTTLENECK)

    @classmethod
    def of(cls, bottleneck: bool, preact: bool) -> BlockType:
        base = "bottleneck" if bottleneck else "basic"
        return cls(f"preact-{base}" if preact else base)


class TrainingStatus(StrEnum):
    """How one model's training run ended."""

    OK = "ok"
    NAN = "nan"  # the loss became NaN or infinite; the model stopped, the others went on
    INTERRUPTED = "interrupted"  # Ctrl-C


class DataKind(StrEnum):
    """Where a comparison's batches come from."""

    SYNTHETIC = "synthetic"
    DIGITS = "digits"
    FOLDER = "folder"


__all__ = ["BlockType", "Branch", "DataKind", "ShortcutKind", "TrainingStatus"]
