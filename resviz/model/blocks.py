"""Residual blocks that compute torchvision's function with hook-friendly structure.

Differences from torchvision's ``BasicBlock``/``Bottleneck`` that leave the state_dict and the
forward function unchanged:

* no in-place operations (``inplace=True`` ReLUs and ``out += identity`` break tensor and backward
  hooks); one parameter-free ReLU module per use, so each activation has its own name;
* a parameter-free :class:`Fork` where the main path and the skip path split, returning one view of
  the input per branch: a tensor hook on each view sees exactly the gradient that reaches the block
  input through that branch, and the two add up to the total gradient;
* a parameter-free :class:`ResidualAdd` so the join shows up as a layer in summaries and diagrams.

Variants (``norm`` and ``init`` of the spec) add modules only where asked, so a default spec's
blocks keep torchvision's state_dict: without normalisation the BatchNorm modules are absent and
the convolutions carry biases; Fixup, SkipInit and ReZero end the residual branch with a
:class:`BranchScale` just before the join, so what :class:`ResidualAdd` receives as ``main`` is the
scaled branch; Fixup adds its :class:`ScalarBias` modules before convolutions and activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resviz.records import ShortcutKind
from resviz.spec import BlockKind, Init, Norm, Shortcut, StrideAt


class Fork(nn.Module):
    """Split point of a residual block: returns ``(main_input, skip_input)`` as two views of x."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.view_as(x), x.view_as(x)


class ResidualAdd(nn.Module):
    """The join ``main + skip`` (out of place, so hooks and autograd see both operands)."""

    def forward(self, main: Tensor, skip: Tensor) -> Tensor:
        return main + skip


class ScalarBias(nn.Module):
    """Fixup's scalar bias (Zhang et al. 2019, arXiv:1901.09321, Sec. 3): one learnable number,
    initialised to 0, added to every element before a convolution, an activation or the linear
    layer, where a network without normalisation has no BatchNorm shift."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias


class BranchScale(nn.Module):
    """A learnable scalar multiplying a residual branch's output just before the join.

    ``weight`` starts at ``value``: 0 for SkipInit (De & Smith 2020, arXiv:2002.10444) and ReZero
    (Bachlechner et al. 2020, arXiv:2003.04887), so that a block starts as its skip path; 1 for
    Fixup, whose multiplier comes with a scalar ``bias`` after it (``x * weight + bias``,
    arXiv:1901.09321, Sec. 3).
    """

    def __init__(self, value: float, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((1,), float(value)))
        self.bias: nn.Parameter | None = nn.Parameter(torch.zeros(1)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        out = x * self.weight
        return out if self.bias is None else out + self.bias


def maybe(module: nn.Module | None, x: Tensor) -> Tensor:
    """``module(x)``, or ``x`` where the variant has no such layer."""
    return x if module is None else module(x)


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. 2015: strided identity with zero-padded extra channels, no parameters."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=bias)


def conv1x1(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=bias)


def conv_bias(norm: Norm, init: Init) -> bool:
    """Whether convolutions carry a per-channel bias: only without normalisation, and not under
    Fixup, whose scalar biases take its place (:class:`~resviz.spec.Norm`)."""
    return norm is Norm.NONE and init is not Init.FIXUP


class ResidualBlock(nn.Module):
    """Shared structure of every block: branch bookkeeping the tracer and renderers read.

    ``shortcut_type`` is one of ``identity``, ``projection``, ``zero-pad`` or ``none`` (plain).
    """

    kind: BlockKind

    def __init__(
        self, cin: int, cout: int, stride: int, preact: bool,
        norm: Norm = Norm.BATCH, init: Init = Init.KAIMING,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = cin, cout, stride
        self.preact = preact
        self.norm, self.init = norm, init
        self.conv_bias = conv_bias(norm, init)
        self.shortcut_type = ShortcutKind.NONE
        self.downsample: nn.Module | None = None
        self.fork: Fork | None = None
        self.add: ResidualAdd | None = None
        self.scale: BranchScale | None = None

    def _bn(self, channels: int) -> nn.Module | None:
        """A BatchNorm layer, or nothing without normalisation."""
        return nn.BatchNorm2d(channels) if self.norm is Norm.BATCH else None

    def _fixup_bias(self) -> ScalarBias | None:
        """A Fixup scalar bias, or nothing under any other initialisation."""
        return ScalarBias() if self.init is Init.FIXUP else None

    def _make_scale(self) -> None:
        """The branch multiplier of Fixup, SkipInit and ReZero, registered after the branch's
        layers (with Fixup's last scalar bias inside it)."""
        if self.init.scales_branches:
            self.scale = BranchScale(self.init.branch_scale, bias=self.init is Init.FIXUP)

    def branch_convs(self) -> list[nn.Conv2d]:
        """The residual branch's convolutions in order (``conv1``, ``conv2`` and a bottleneck's
        ``conv3``); the last one is what Fixup initialises to zero."""
        names = ("conv1", "conv2") if self.kind is BlockKind.BASIC else ("conv1", "conv2", "conv3")
        return [getattr(self, n) for n in names]

    def _make_shortcut(self, shortcut: Shortcut) -> None:
        """Create the skip path; called last so state_dict keys follow torchvision's order."""
        cin, cout, stride = self.in_channels, self.out_channels, self.stride
        reshapes = stride != 1 or cin != cout
        if shortcut is Shortcut.NONE:
            return
        if shortcut is Shortcut.C or (shortcut is Shortcut.B and reshapes):
            self.shortcut_type = ShortcutKind.PROJECTION
            # Pre-activation nets project the already activated input: no BN after the 1x1.
            bn = None if self.preact else self._bn(cout)
            norm: list[nn.Module] = [] if bn is None else [bn]
            self.downsample = nn.Sequential(conv1x1(cin, cout, stride, bias=self.conv_bias), *norm)
        elif reshapes:
            self.shortcut_type = ShortcutKind.ZERO_PAD
            self.downsample = ZeroPadShortcut(stride, cout - cin)
        else:
            self.shortcut_type = ShortcutKind.IDENTITY
        self.fork = Fork()
        self.add = ResidualAdd()

    def _join(self, out: Tensor, skip: Tensor | None) -> Tensor:
        out = maybe(self.scale, out)
        if self.add is None or skip is None:
            return out
        if self.downsample is not None:
            skip = self.downsample(skip)
        return self.add(out, skip)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.fork is None:
            return x, None
        return self.fork(x)


class PostActBlock(ResidualBlock):
    """He et al. 2015 blocks, torchvision's layout: conv-BN-ReLU ..., add, then ReLU.

    Under Fixup the scalar biases sit where the paper's Sec. 3 puts them (named as in its reference code):
    ``biasNa`` before convolution N, ``biasNb`` before its activation; where the block has a
    downsampling shortcut, ``bias1a`` is added before the fork so that both paths see it.
    """

    def __init__(
        self, kind: BlockKind, cin: int, planes: int, stride: int, shortcut: Shortcut,
        inner: int, groups: int = 1, stride_at: StrideAt = StrideAt.CONV3X3,
        norm: Norm = Norm.BATCH, init: Init = Init.KAIMING,
    ) -> None:
        cout = planes * kind.expansion
        super().__init__(cin, cout, stride, preact=False, norm=norm, init=init)
        self.kind = kind
        b = self.conv_bias
        self.bias1a = self._fixup_bias()
        if kind is BlockKind.BASIC:
            self.conv1 = conv3x3(cin, planes, stride, bias=b)
            self.bn1 = self._bn(planes)
            self.bias1b = self._fixup_bias()
            self.relu1 = nn.ReLU()
            self.bias2a = self._fixup_bias()
            self.conv2 = conv3x3(planes, planes, bias=b)
            self.bn2 = self._bn(planes)
            self.relu2 = nn.ReLU()
        else:
            s1, s3 = (stride, 1) if stride_at is StrideAt.CONV1X1 else (1, stride)
            self.conv1 = conv1x1(cin, inner, s1, bias=b)
            self.bn1 = self._bn(inner)
            self.bias1b = self._fixup_bias()
            self.relu1 = nn.ReLU()
            self.bias2a = self._fixup_bias()
            self.conv2 = conv3x3(inner, inner, s3, groups, bias=b)
            self.bn2 = self._bn(inner)
            self.bias2b = self._fixup_bias()
            self.relu2 = nn.ReLU()
            self.bias3a = self._fixup_bias()
            self.conv3 = conv1x1(inner, cout, bias=b)
            self.bn3 = self._bn(cout)
            self.relu3 = nn.ReLU()
        self._make_scale()
        self._make_shortcut(shortcut)

    def _enter(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The two paths' inputs, with Fixup's first bias shared where the shortcut downsamples."""
        if self.bias1a is not None and self.downsample is not None:
            return self._split(self.bias1a(x))
        main, skip = self._split(x)
        return maybe(self.bias1a, main), skip

    def forward(self, x: Tensor) -> Tensor:
        main, skip = self._enter(x)
        out = self.relu1(maybe(self.bias1b, maybe(self.bn1, self.conv1(main))))
        out = maybe(self.bn2, self.conv2(maybe(self.bias2a, out)))
        if self.kind is BlockKind.BASIC:
            return self.relu2(self._join(out, skip))
        out = self.relu2(maybe(self.bias2b, out))
        out = maybe(self.bn3, self.conv3(maybe(self.bias3a, out)))
        return self.relu3(self._join(out, skip))


class PreActBlock(ResidualBlock):
    """He et al. 2016 blocks: BN-ReLU-conv on the main path, nothing after the addition.

    Where the block projects its shortcut, the pre-activation is shared by both paths (the
    paper's Appendix and its reference code); ``skip_preact`` drops the first BN-ReLU when the
    input is already activated (the ImageNet stem's BN-ReLU-max-pool). Without normalisation
    only the ReLUs remain.
    """

    def __init__(
        self, kind: BlockKind, cin: int, planes: int, stride: int, shortcut: Shortcut,
        inner: int, groups: int = 1, stride_at: StrideAt = StrideAt.CONV3X3,
        skip_preact: bool = False, norm: Norm = Norm.BATCH, init: Init = Init.KAIMING,
    ) -> None:
        cout = planes * kind.expansion
        super().__init__(cin, cout, stride, preact=True, norm=norm, init=init)
        self.kind = kind
        b = self.conv_bias
        self.bn1: nn.Module | None = None if skip_preact else self._bn(cin)
        self.relu1: nn.Module | None = None if skip_preact else nn.ReLU()
        if kind is BlockKind.BASIC:
            self.conv1 = conv3x3(cin, planes, stride, bias=b)
            self.bn2 = self._bn(planes)
            self.relu2 = nn.ReLU()
            self.conv2 = conv3x3(planes, planes, bias=b)
        else:
            s1, s3 = (stride, 1) if stride_at is StrideAt.CONV1X1 else (1, stride)
            self.conv1 = conv1x1(cin, inner, s1, bias=b)
            self.bn2 = self._bn(inner)
            self.relu2 = nn.ReLU()
            self.conv2 = conv3x3(inner, inner, s3, groups, bias=b)
            self.bn3 = self._bn(inner)
            self.relu3 = nn.ReLU()
            self.conv3 = conv1x1(inner, cout, bias=b)
        self._make_scale()
        self._make_shortcut(shortcut)
        self.shared_preact = self.shortcut_type is ShortcutKind.PROJECTION and not skip_preact

    def _preact(self, x: Tensor) -> Tensor:
        if self.relu1 is None:
            return x
        return self.relu1(maybe(self.bn1, x))

    def forward(self, x: Tensor) -> Tensor:
        if self.shared_preact:
            main, skip = self._split(self._preact(x))
        else:
            main, skip = self._split(x)
            main = self._preact(main)
        out = self.conv1(main)
        out = self.conv2(self.relu2(maybe(self.bn2, out)))
        if self.kind is BlockKind.BOTTLENECK:
            out = self.conv3(self.relu3(maybe(self.bn3, out)))
        return self._join(out, skip)


def is_residual_block(module: nn.Module) -> bool:
    """True for resviz blocks and for torchvision-style blocks (a ``conv1`` and a ``downsample``)."""
    if isinstance(module, ResidualBlock):
        return True
    return hasattr(module, "downsample") and hasattr(module, "conv1") and hasattr(module, "conv2")


def shortcut_type(block: nn.Module) -> ShortcutKind:
    """A block's shortcut as records name it; a torchvision-style block has a projection exactly
    when its ``downsample`` is set."""
    if isinstance(block, ResidualBlock):
        return block.shortcut_type
    return ShortcutKind.PROJECTION if getattr(block, "downsample", None) is not None else ShortcutKind.IDENTITY


def find_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Residual blocks (resviz and torchvision-style) by qualified name, in registration order;
    outermost only, and never the model itself."""
    found: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if m is model or not is_residual_block(m):
            continue
        if any(name.startswith(f"{outer}.") for outer, _ in found):
            continue
        found.append((name, m))
    return found


__all__ = [
    "BranchScale", "Fork", "PostActBlock", "PreActBlock", "ResidualAdd", "ResidualBlock", "ScalarBias",
    "ZeroPadShortcut", "conv1x1", "conv3x3", "conv_bias", "find_blocks", "is_residual_block", "maybe",
    "shortcut_type",
]
