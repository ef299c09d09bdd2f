"""Negative case: an Inception-style sum of two multi-layer conv branches of the same input.

Szegedy et al., "Going Deeper with Convolutions", arXiv:1409.4842 (which concatenates its branches; here they
are summed). ``mixed`` computes
``branch3x3(x) + branch5x5(x)``: both operands start from ``x``, but neither is an identity or a short
projection of it (each branch is a 1x1 reduction followed by a spatial conv): not a residual block.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.families import Residual

INPUT = (2, 3, 32, 32)
VARIANTS: dict[str, dict[str, Any]] = {"default": {}}
TRUTH: list[Residual] = []
NOT_RESIDUAL: list[str] = [
    "mixed: branch3x3(x) + branch5x5(x): sum of two parallel conv branches, no identity or short path",
]


class BasicConv2d(nn.Module):
    """torchvision Inception's conv -> BN -> ReLU unit."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class InceptionSum(nn.Module):
    def __init__(self, in_chs: int, width: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_chs, width // 2, 1)
        self.branch3x3_2 = BasicConv2d(width // 2, width, 3)
        self.branch5x5_1 = BasicConv2d(in_chs, width // 2, 1)
        self.branch5x5_2 = BasicConv2d(width // 2, width, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        return branch3x3 + branch5x5


class InceptionNet(nn.Module):
    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.stem = BasicConv2d(3, width, 3)
        self.pool = nn.MaxPool2d(2)
        self.mixed = InceptionSum(width, width)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixed(self.pool(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(width: int = 8, num_classes: int = 10) -> nn.Module:
    return InceptionNet(width, num_classes)


def truth(**sizes: Any) -> list[Residual]:
    return []
