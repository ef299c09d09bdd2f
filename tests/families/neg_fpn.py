"""Negative case: a feature pyramid (FPN) top-down path, as torchvision's ``FeaturePyramidNetwork`` writes it.

Lin et al., "Feature Pyramid Networks", arXiv:1612.03144. ``last_inner = inner_blocks[-1](c3)``; for the finer
level ``inner_lateral = inner_blocks[0](c2)``, ``inner_top_down = F.interpolate(last_inner, size, "nearest")``,
``last_inner = inner_lateral + inner_top_down``: a lateral 1x1 conv of a backbone feature plus an upsampled
coarser map, merging two pyramid levels: not a residual block.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.families import Residual
from tests.families.neg_unet import conv_block

INPUT = (2, 3, 32, 32)
VARIANTS: dict[str, dict[str, Any]] = {"default": {}}
TRUTH: list[Residual] = []
NOT_RESIDUAL: list[str] = [
    "fpn: inner_blocks.0(c2) + interpolate(inner_blocks.1(c3)): FPN lateral plus upsampled coarser level",
]


class FeaturePyramidNetwork(nn.Module):
    def __init__(self, in_channels_list: list[int], out_channels: int) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList([nn.Conv2d(c, out_channels, 1) for c in in_channels_list])
        self.layer_blocks = nn.ModuleList([nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                           for _ in in_channels_list])

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        last_inner = self.inner_blocks[-1](x[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(x) - 2, -1, -1):
            inner_lateral = self.inner_blocks[idx](x[idx])
            inner_top_down = F.interpolate(last_inner, size=inner_lateral.shape[-2:], mode="nearest")
            last_inner = inner_lateral + inner_top_down
            results.insert(0, self.layer_blocks[idx](last_inner))
        return results


class PyramidNet(nn.Module):
    def __init__(self, width: int, out_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_block(3, width), nn.MaxPool2d(2))
        self.c2 = nn.Sequential(conv_block(width, width), nn.MaxPool2d(2))
        self.c3 = nn.Sequential(conv_block(width, 2 * width), nn.MaxPool2d(2))
        self.fpn = FeaturePyramidNetwork([width, 2 * width], out_channels)
        self.fc = nn.Linear(2 * out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c2 = self.c2(self.stem(x))
        c3 = self.c3(c2)
        pooled = [p.mean((2, 3)) for p in self.fpn([c2, c3])]
        return self.fc(torch.cat(pooled, dim=1))


def build(width: int = 8, out_channels: int = 8, num_classes: int = 10) -> nn.Module:
    return PyramidNet(width, out_channels, num_classes)


def truth(**sizes: Any) -> list[Residual]:
    return []
