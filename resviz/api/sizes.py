"""Input sizes, read once for every surface: ``NxCxHxW`` or ``CxHxW`` as text or integers.

The static pass counts per image (batch 1, as the papers and torchvision do); a trace needs a
batch of at least two (train-mode BatchNorm needs more than one value per channel); a comparison
takes ``CxHxW`` plus a batch.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Sequence

from resviz import limits
from resviz.errors import ResvizError, clip, quote
from resviz.records import Shape
from resviz.spec import ResNetSpec

SizeLike = str | Sequence[int]

TRACE_BATCH = 2
"""Default batch of a trace: the smallest that train-mode BatchNorm accepts."""

COMPARE_BATCH = 8
"""Default batch of a comparison."""

_DECIMAL = re.compile(r"-?[0-9]+")
_MALFORMED = "malformed input size {text}: use NxCxHxW, e.g. 1x3x224x224"

#: More dimensions than this is no image batch, and is refused before its numbers are read.
_MAX_DIMS = 8


def parse_dims(text: SizeLike) -> Shape:
    """The dimensions as given (separated by ``x``, commas or spaces), each a positive integer no
    larger than any dimension resviz accepts (:mod:`resviz.limits`)."""
    if isinstance(text, str):
        parts = [p for p in re.split(r"[x,\s]+", text.strip().lower()) if p]
        if len(parts) > _MAX_DIMS:
            raise ResvizError(_MALFORMED.format(text=quote(text)))
        if not all(_DECIMAL.fullmatch(p) for p in parts):  # int() would take "1_0", "+5" and "١"
            raise ResvizError(_MALFORMED.format(text=quote(text)))
        dims = tuple(int(p) for p in parts)
    else:
        try:
            dims = tuple(operator.index(d) for d in text)
        except TypeError:
            raise ResvizError(_MALFORMED.format(text=quote(text))) from None
        if any(isinstance(d, bool) for d in text):  # operator.index(True) is 1
            raise ResvizError(_MALFORMED.format(text=quote(text)))
        if len(dims) > _MAX_DIMS:
            raise ResvizError(_MALFORMED.format(text=quote(text)))
    if any(d < 1 for d in dims):
        raise ResvizError(f"input size {clip(_shown(dims))} has a dimension below 1")
    largest = max(limits.MAX_SIDE, limits.MAX_BATCH, limits.MAX_CHANNELS)
    if any(d > largest for d in dims):
        raise ResvizError(f"input size {clip(_shown(dims))} has a dimension above {largest}, the most resviz "
                          "accepts for a batch, a side or channels")
    return dims


def _shown(dims: Sequence[int]) -> str:
    """``NxCxHxW`` of dimensions that may be too large to print whole."""
    return "x".join(clip(d, 24) for d in dims)


def check_shape(shape: Shape) -> Shape:
    """``shape`` (NxCxHxW) when its batch, channels, sides and element count are within
    :mod:`resviz.limits`; a one-line :class:`ResvizError` naming the bound otherwise."""
    n, c, h, w = shape
    for value, what, high, why in (
        (n, "batch", limits.MAX_BATCH, limits.BATCH_WHY),
        (c, "channels", limits.MAX_CHANNELS, limits.CHANNELS_WHY),
        (h, "height", limits.MAX_SIDE, limits.SIDE_WHY),
        (w, "width", limits.MAX_SIDE, limits.SIDE_WHY),
    ):
        if value > high:
            raise ResvizError(f"input size {_shown(shape)}: {what} {value} is more than the {high} resviz accepts "
                              f"({why})")
    elements = math.prod(shape)
    if elements > limits.MAX_INPUT_ELEMENTS:
        raise ResvizError(f"input size {_shown(shape)}: {elements} values, more than the "
                          f"{limits.MAX_INPUT_ELEMENTS} resviz accepts ({limits.ELEMENTS_WHY})")
    return shape


def parse_input_size(text: SizeLike) -> Shape:
    """``"1x3x224x224"`` (or ``1,3,224,224`` or a sequence) -> ``(1, 3, 224, 224)``; three
    dimensions (CxHxW) mean one image."""
    dims = parse_dims(text)
    if len(dims) == 3:
        dims = (1, *dims)
    if len(dims) != 4:
        raise ResvizError(
            f"malformed input size {quote(text)}: need 4 dimensions NxCxHxW (or 3: CxHxW), got {len(dims)}"
        )
    return check_shape(dims)


def default_input_size(spec: ResNetSpec | None) -> Shape:
    """224x224 for ImageNet stems (torchvision's ``_ops`` resolution), 32x32 for CIFAR stems, and
    3x224x224 for a module resviz did not build."""
    return spec.default_input_size if spec is not None else (1, 3, 224, 224)


def static_shape(spec: ResNetSpec | None, input_size: SizeLike | None) -> Shape:
    """The static pass's input: as given, else the spec's default."""
    return parse_input_size(input_size) if input_size is not None else default_input_size(spec)


def trace_shape(spec: ResNetSpec | None, input_size: SizeLike | None) -> Shape:
    """A trace's batch: as given, else the spec's default image at batch :data:`TRACE_BATCH`."""
    if input_size is not None:
        return parse_input_size(input_size)
    _, c, h, w = default_input_size(spec)
    return (TRACE_BATCH, c, h, w)


def batch_shape(input_size: SizeLike, batch: int | None) -> tuple[int, int, int, int]:
    """A comparison's batch: ``CxHxW`` plus ``batch`` (default :data:`COMPARE_BATCH`), or
    ``NxCxHxW`` whose N is the batch unless ``batch`` is given."""
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)):
        raise ResvizError(f"batch size must be an integer, got {quote(batch)}")
    if batch is not None and batch < 1:
        raise ResvizError(f"batch size must be at least 1, got {clip(batch)}")
    if batch is not None:
        limits.bounded(batch, "batch size", limits.MAX_BATCH, limits.BATCH_WHY)
    dims = parse_dims(input_size)
    n, c, h, w = parse_input_size(dims)
    if batch is None:
        batch = n if len(dims) == 4 else COMPARE_BATCH
    shape = (batch, c, h, w)
    check_shape(shape)
    return shape


__all__ = [
    "COMPARE_BATCH", "TRACE_BATCH", "SizeLike", "batch_shape", "check_shape", "default_input_size", "parse_dims",
    "parse_input_size", "static_shape", "trace_shape",
]
