"""HuggingFace ``transformers`` ResNet (``models/resnet/modeling_resnet.py``), used as is: random init from a
``ResNetConfig``, no download.

He et al., arXiv:1512.03385. In ``modeling_resnet.py`` a layer (``ResNetBasicLayer`` / ``ResNetBottleNeckLayer``)
holds ``shortcut`` (``ResNetShortCut`` = 1x1 conv ``convolution`` + BatchNorm ``normalization`` when the width or
stride changes, else ``nn.Identity``) and ``layer`` (``nn.Sequential`` of ``ResNetConvLayer`` = ``convolution`` ->
``normalization`` -> ``activation``; the last one has ``activation = nn.Identity()``); its forward is
``residual = shortcut(x)``, ``hidden_state += residual``, ``activation``. Blocks are
``resnet.encoder.stages.<s>.layers.<b>``; the first stage does not downsample (``downsample_in_first_stage``
is off by default), so with ``embedding_size == hidden_sizes[0]`` its first layer has an identity shortcut.
The model returns an output object whose ``.logits`` is the tensor.
"""

from __future__ import annotations

from typing import Any

import transformers
from torch import nn

from tests.families import Residual

INPUT = (2, 3, 32, 32)
NOT_RESIDUAL: list[str] = []
VARIANTS: dict[str, dict[str, Any]] = {"basic": {}, "bottleneck": {"layer_type": "bottleneck"}}


def build(layer_type: str = "basic", embedding_size: int = 16, hidden_sizes: tuple[int, ...] = (16, 32),
          depths: tuple[int, ...] = (1, 1), num_labels: int = 10) -> nn.Module:
    config = transformers.ResNetConfig(embedding_size=embedding_size, hidden_sizes=list(hidden_sizes),
                                       depths=list(depths), layer_type=layer_type)
    config.num_labels = num_labels
    model: nn.Module = transformers.ResNetForImageClassification(config)
    return model


def truth(layer_type: str = "basic", embedding_size: int = 16, hidden_sizes: tuple[int, ...] = (16, 32),
          depths: tuple[int, ...] = (1, 1), num_labels: int = 10) -> list[Residual]:
    last = "layer.1.normalization" if layer_type == "basic" else "layer.2.normalization"
    out: list[Residual] = []
    in_channels = embedding_size
    for s, (width, depth) in enumerate(zip(hidden_sizes, depths, strict=True)):
        for b in range(depth):
            name = f"resnet.encoder.stages.{s}.layers.{b}"
            project = b == 0 and (s > 0 or in_channels != width)
            out.append(Residual(name, 1, "projection" if project else "identity", f"{name}.{last}", (), s,
                                f"{name}.shortcut"))
            in_channels = width
    return out


TRUTH = truth()
