"""ResNet-D (He et al., arXiv:1812.01187): timm ``resnet50d`` structure, deep 3x3 stem and pooled-projection
shortcuts (``AvgPool2d`` -> 1x1 conv -> BN) in downsampling blocks.

The drop-path variant (timm's stochastic depth, arXiv:1603.09382) adds a ``DropPath`` after ``bn3``.
"""

from __future__ import annotations

from typing import Any

from tests.families import _timm_resnet

INPUT = (2, 3, 32, 32)
NOT_RESIDUAL: list[str] = []
VARIANTS: dict[str, dict[str, Any]] = {"default": {}, "drop_path": {"drop_path_rate": 0.1}}

build, truth = _timm_resnet.variant(deep_stem=True, avg_down=True)
TRUTH = truth()
