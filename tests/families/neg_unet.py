"""Negative case: a tiny U-Net whose long skip is additive (encoder feature + upsampled decoder feature).

Ronneberger et al., "U-Net", arXiv:1505.04597 (which concatenates; additive long skips as in e.g. LinkNet,
arXiv:1707.03718). The addition ``up(enc2(pool(e1))) + e1`` joins an encoder level to the decoder level of the
same resolution after a path that leaves that resolution and comes back: not a residual block.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.families import ROOT, Residual

INPUT = (2, 3, 32, 32)
VARIANTS: dict[str, dict[str, Any]] = {"default": {}}
TRUTH: list[Residual] = []
NOT_RESIDUAL: list[str] = [
    f"{ROOT}: up(enc2(pool(enc1 output))) + enc1 output: U-Net long skip across a down- and up-sampling path",
]


def conv_block(in_chs: int, out_chs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 3, padding=1, bias=False), nn.BatchNorm2d(out_chs),
                         nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.enc1 = conv_block(3, width)
        self.pool = nn.MaxPool2d(2)
        self.enc2 = conv_block(width, 2 * width)
        self.up = nn.ConvTranspose2d(2 * width, width, kernel_size=2, stride=2)
        self.dec1 = conv_block(width, width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        d1 = self.up(e2) + e1
        return self.head(self.dec1(d1))


def build(width: int = 8, num_classes: int = 3) -> nn.Module:
    return UNet(width, num_classes)


def truth(**sizes: Any) -> list[Residual]:
    return []
