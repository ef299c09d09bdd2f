"""SE-ResNet (Hu et al., arXiv:1709.01507): timm ``seresnet50`` structure, an ``SEModule`` after ``bn3``.

The drop-path variant (timm's stochastic depth, arXiv:1603.09382) adds a ``DropPath`` after the SE module.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tests.families import Residual, _timm_resnet

INPUT = (2, 3, 32, 32)
NOT_RESIDUAL: list[str] = []
DEFAULTS: dict[str, Any] = dict(attn_layer="se")
VARIANTS: dict[str, dict[str, Any]] = {"default": {}, "drop_path": {"drop_path_rate": 0.1}}


def build(**sizes: Any) -> nn.Module:
    return _timm_resnet.build(**{**DEFAULTS, **sizes})


def truth(**sizes: Any) -> list[Residual]:
    return _timm_resnet.truth(**{**DEFAULTS, **sizes})


TRUTH = truth()
