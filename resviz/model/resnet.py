"""The ResNet module built from a :class:`~resviz.spec.ResNetSpec`.

Module names follow torchvision (``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer1`` ...,
``avgpool``, ``fc``; inside blocks ``conv1``/``bn1``/.../``downsample.0``/``downsample.1``) so a
torchvision checkpoint loads with strict key checking. Pre-activation nets add ``final_bn`` and
``final_relu`` after the last stage (He et al. 2016, Fig. 4: the last unit is followed by BN-ReLU).
Without normalisation (``norm=none``) every BatchNorm is absent; Fixup adds the scalar biases
``bias1`` (before the stem's ReLU) and ``bias2`` (before ``fc``) of its reference code
(Zhang et al. 2019, arXiv:1901.09321).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from resviz.errors import ResvizError, quote
from resviz.model.blocks import PostActBlock, PreActBlock, ResidualBlock, ScalarBias, conv_bias, maybe
from resviz.model.fastmeta import FastMeta
from resviz.model.init import initialise
from resviz.spec import Init, Norm, ResNetSpec, Stem
from resviz.zoo import get_spec


class ResNet(nn.Module):
    """A residual network; ``spec`` is kept so analyses and renderers know what was built."""

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        sw, bias, norms = spec.stem_width, conv_bias(spec.norm, spec.init), spec.norm is Norm.BATCH
        fixup = spec.init is Init.FIXUP
        if spec.stem is Stem.IMAGENET:
            self.conv1 = nn.Conv2d(spec.in_channels, sw, 7, stride=2, padding=3, bias=bias)
        else:
            self.conv1 = nn.Conv2d(spec.in_channels, sw, 3, stride=1, padding=1, bias=bias)
        # A CIFAR pre-activation net starts its first unit with BN-ReLU; every other stem
        # normalises and activates right after conv1.
        stem_activates = not (spec.preact and spec.stem is Stem.CIFAR)
        self.bn1: nn.Module | None = nn.BatchNorm2d(sw) if stem_activates and norms else None
        self.bias1: nn.Module | None = ScalarBias() if stem_activates and fixup else None
        self.relu: nn.Module | None = nn.ReLU() if stem_activates else None
        self.maxpool: nn.Module | None = (
            nn.MaxPool2d(3, stride=2, padding=1) if spec.stem is Stem.IMAGENET else None
        )
        cin = sw
        for i, (n, planes) in enumerate(zip(spec.layers, spec.widths, strict=True)):
            blocks: list[nn.Module] = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(self._block(spec, i, cin, planes, stride, first=(i == 0 and j == 0)))
                cin = planes * spec.block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.final_bn: nn.Module | None = nn.BatchNorm2d(cin) if spec.preact and norms else None
        self.final_relu: nn.Module | None = nn.ReLU() if spec.preact else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.bias2: nn.Module | None = ScalarBias() if fixup else None
        self.fc = nn.Linear(cin, spec.num_classes)
        initialise(self, spec)

    @staticmethod
    def _block(
        spec: ResNetSpec, stage: int, cin: int, planes: int, stride: int, first: bool,
    ) -> ResidualBlock:
        inner = spec.inner_width(stage)
        if spec.preact:
            skip_preact = first and spec.stem is Stem.IMAGENET
            return PreActBlock(
                spec.block, cin, planes, stride, spec.shortcut, inner, spec.groups,
                spec.stride_at, skip_preact=skip_preact, norm=spec.norm, init=spec.init,
            )
        return PostActBlock(
            spec.block, cin, planes, stride, spec.shortcut, inner, spec.groups, spec.stride_at,
            norm=spec.norm, init=spec.init,
        )

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.spec.num_stages)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        if self.relu is not None:
            x = self.relu(maybe(self.bias1, maybe(self.bn1, x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for stage in self.stages:
            x = stage(x)
        if self.final_relu is not None:
            x = self.final_relu(maybe(self.final_bn, x))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(maybe(self.bias2, x))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a user error."""
    if isinstance(device, torch.device):
        dev = device
    else:
        name = str(device).strip().lower()
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ResvizError(f"unknown device {quote(device)}: use auto, cpu, cuda or meta") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ResvizError("CUDA was requested but no CUDA device is available; use --device cpu")
    return dev


def build_model(
    name_or_spec: str | ResNetSpec, device: str | torch.device = "auto", plain: bool = False,
) -> ResNet:
    """Build a preset (by name) or a spec on ``device`` (``auto``: CUDA when present).

    On the ``meta`` device no memory is allocated and no initialisation runs, which is how the
    static analysis stays free.
    """
    spec = get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    if not isinstance(spec, ResNetSpec):
        raise ResvizError(f"expected a model name or a ResNetSpec, got {type(spec).__name__}")
    spec = spec.validate().plain() if plain else spec.validate()
    dev = resolve_device(device)
    if dev.type == "meta":
        with dev, FastMeta():
            return ResNet(spec)
    with dev:
        return ResNet(spec)
