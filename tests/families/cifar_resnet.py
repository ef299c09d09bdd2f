"""CIFAR ResNet with option-A shortcuts (zero-padding identity), as in the widely used re-implementation of
He et al., arXiv:1512.03385, section 4.2: ``shortcut = LambdaLayer(subsample by 2, zero-pad the new channels)``.

Block names ``layer1.0`` ...; ``F.relu`` as a function (not a module), ``out += self.shortcut(x)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.families import Residual

INPUT = (2, 3, 32, 32)
NOT_RESIDUAL: list[str] = []
VARIANTS: dict[str, dict[str, Any]] = {"default": {}}


class LambdaLayer(nn.Module):
    """Wraps a parameter-free function as a module (the option-A shortcut)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            pad = planes // 4
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResNetCifar(nn.Module):
    def __init__(self, layers: tuple[int, ...], widths: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        for i, (depth, planes) in enumerate(zip(layers, widths, strict=True)):
            blocks = []
            for b in range(depth):
                blocks.append(BasicBlock(self.in_planes, planes, 2 if (i > 0 and b == 0) else 1))
                self.in_planes = planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(widths[-1], num_classes)
        self.num_stages = len(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        for i in range(self.num_stages):
            out = getattr(self, f"layer{i + 1}")(out)
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def build(layers: tuple[int, ...] = (2, 1), widths: tuple[int, ...] = (8, 16), num_classes: int = 10) -> nn.Module:
    return ResNetCifar(layers, widths, num_classes)


def truth(layers: tuple[int, ...] = (2, 1), widths: tuple[int, ...] = (8, 16), num_classes: int = 10) -> list[Residual]:
    out: list[Residual] = []
    for s, depth in enumerate(layers):
        for b in range(depth):
            name = f"layer{s + 1}.{b}"
            pad = s > 0 and b == 0
            out.append(Residual(name, 1, "zero-pad" if pad else "identity", f"{name}.bn2", stage=s,
                                shortcut_module=f"{name}.shortcut"))
    return out


TRUTH = truth()
