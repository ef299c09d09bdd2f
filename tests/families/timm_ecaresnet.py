"""ECA-ResNet (Wang et al., arXiv:1910.03151): timm ``ecaresnet`` structure, an ``EcaModule`` after ``bn3``.

The drop-path variant (timm's stochastic depth, arXiv:1603.09382) adds a ``DropPath`` after the ECA module.
"""

from __future__ import annotations

from typing import Any

from tests.families import _timm_resnet

INPUT = (2, 3, 32, 32)
NOT_RESIDUAL: list[str] = []
VARIANTS: dict[str, dict[str, Any]] = {"default": {}, "drop_path": {"drop_path_rate": 0.1}}

build, truth = _timm_resnet.variant(attn_layer="eca")
TRUTH = truth()
