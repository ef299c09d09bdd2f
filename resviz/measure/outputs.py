"""The tensor a classification loss reads from whatever a model returns.

torchvision and timm classifiers return logits; HuggingFace models return a ``ModelOutput`` (a
mapping with attribute access) whose ``logits`` field holds them; torchvision's segmentation models
a dict with ``out``; other models a tuple whose first element is the prediction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from resviz.errors import ResvizError, clip

LOGIT_KEYS = ("logits", "out")


def find_logits(out: Any) -> Tensor | None:
    """The logits in ``out``: the tensor itself, a ``logits``/``out`` field or key, or the first
    element of a tuple or list; None when there is none."""
    if isinstance(out, Tensor):
        return out
    for key in LOGIT_KEYS:
        value = out.get(key) if isinstance(out, Mapping) else getattr(out, key, None)
        if isinstance(value, Tensor):
            return value
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    return None


def logits(out: Any, label: str) -> Tensor:
    """:func:`find_logits`, or a one-line error naming what the model returned."""
    found = find_logits(out)
    if found is not None:
        return found
    fields = f" with fields {clip(', '.join(map(str, out.keys())), 120)}" if isinstance(out, Mapping) else ""
    raise ResvizError(
        f"{label} returns {type(out).__name__}{fields}, with no logits to find (a tensor, or a 'logits' or "
        f"'out' field): pass loss= to say what to differentiate"
    )


__all__ = ["LOGIT_KEYS", "find_logits", "logits"]
