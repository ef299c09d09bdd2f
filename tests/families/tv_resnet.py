"""torchvision ResNet (``torchvision.models.resnet``): BasicBlock and Bottleneck ("v1.5": stride on the 3x3).

He et al., "Deep Residual Learning for Image Recognition", arXiv:1512.03385. Same module names, order of
operations and in-place operations as torchvision: ``ReLU(inplace=True)`` and ``out += identity``; projection
shortcut ``downsample = Sequential(conv1x1, BatchNorm2d)`` when the stride or the width changes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.families import Residual

INPUT = (2, 3, 32, 32)
NOT_RESIDUAL: list[str] = []
VARIANTS: dict[str, dict[str, Any]] = {"basic": {}, "bottleneck": {"block": "bottleneck"}}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """torchvision's ResNet with ``len(layers)`` stages named ``layer1``, ``layer2`` ... (torchvision has four)."""

    def __init__(self, block: str, layers: tuple[int, ...], widths: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        kind = BLOCKS[block]
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (depth, planes) in enumerate(zip(layers, widths, strict=True)):
            self.add_module(f"layer{i + 1}", self._make_layer(kind, planes, depth, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * kind.expansion, num_classes)
        self.num_stages = len(layers)

    def _make_layer(self, kind: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
                    stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * kind.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * kind.expansion, stride),
                                       nn.BatchNorm2d(planes * kind.expansion))
        layers: list[nn.Module] = [kind(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * kind.expansion
        layers += [kind(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def build(block: str = "basic", layers: tuple[int, ...] = (2, 1), widths: tuple[int, ...] = (8, 16),
          num_classes: int = 10) -> nn.Module:
    return ResNet(block, layers, widths, num_classes)


def truth(block: str = "basic", layers: tuple[int, ...] = (2, 1), widths: tuple[int, ...] = (8, 16),
          num_classes: int = 10) -> list[Residual]:
    expansion = BLOCKS[block].expansion
    last = "bn2" if block == "basic" else "bn3"
    out: list[Residual] = []
    inplanes = widths[0]
    for s, (depth, planes) in enumerate(zip(layers, widths, strict=True)):
        for b in range(depth):
            name = f"layer{s + 1}.{b}"
            project = b == 0 and (s > 0 or inplanes != planes * expansion)
            out.append(Residual(name, 1, "projection" if project else "identity", f"{name}.{last}", stage=s,
                                shortcut_module=f"{name}.downsample" if project else None))
            inplanes = planes * expansion
    return out


TRUTH = truth()
