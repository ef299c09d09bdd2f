"""Residual blocks that compute torchvision's function with hook-friendly structure.

Differences from torchvision's ``BasicBlock``/``Bottleneck`` that leave the state_dict and the
forward function unchanged:

* no in-place operations (``inplace=True`` ReLUs and ``out += identity`` break tensor and backward
  hooks); one parameter-free ReLU module per use, so each activation has its own name;
* a parameter-free :class:`Fork` where the main path and the skip path split, returning one view of
  the input per branch: a tensor hook on each view sees exactly the gradient that reaches the block
  input through that branch, and the two add up to the total gradient;
* a parameter-free :class:`ResidualAdd` so the join shows up as a layer in summaries and diagrams.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from resviz.records import ShortcutKind
from resviz.spec import BlockKind, Shortcut, StrideAt


class Fork(nn.Module):
    """Split point of a residual block: returns ``(main_input, skip_input)`` as two views of x."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.view_as(x), x.view_as(x)


class ResidualAdd(nn.Module):
    """The join ``main + skip`` (out of place, so hooks and autograd see both operands)."""

    def forward(self, main: Tensor, skip: Tensor) -> Tensor:
        return main + skip


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


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class ResidualBlock(nn.Module):
    """Shared structure of every block: branch bookkeeping the tracer and renderers read.

    ``shortcut_type`` is one of ``identity``, ``projection``, ``zero-pad`` or ``none`` (plain).
    """

    kind: BlockKind

    def __init__(self, cin: int, cout: int, stride: int, preact: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = cin, cout, stride
        self.preact = preact
        self.shortcut_type = ShortcutKind.NONE
        self.downsample: nn.Module | None = None
        self.fork: Fork | None = None
        self.add: ResidualAdd | None = None

    def _make_shortcut(self, shortcut: Shortcut) -> None:
        """Create the skip path; called last so state_dict keys follow torchvision's order."""
        cin, cout, stride = self.in_channels, self.out_channels, self.stride
        reshapes = stride != 1 or cin != cout
        if shortcut is Shortcut.NONE:
            return
        if shortcut is Shortcut.C or (shortcut is Shortcut.B and reshapes):
            self.shortcut_type = ShortcutKind.PROJECTION
            # Pre-activation nets project the already activated input: no BN after the 1x1.
            norm: list[nn.Module] = [] if self.preact else [nn.BatchNorm2d(cout)]
            self.downsample = nn.Sequential(conv1x1(cin, cout, stride), *norm)
        elif reshapes:
            self.shortcut_type = ShortcutKind.ZERO_PAD
            self.downsample = ZeroPadShortcut(stride, cout - cin)
        else:
            self.shortcut_type = ShortcutKind.IDENTITY
        self.fork = Fork()
        self.add = ResidualAdd()

    def _join(self, out: Tensor, skip: Tensor | None) -> Tensor:
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
    """He et al. 2015 blocks, torchvision's layout: conv-BN-ReLU ..., add, then ReLU."""

    def __init__(
        self, kind: BlockKind, cin: int, planes: int, stride: int, shortcut: Shortcut,
        inner: int, groups: int = 1, stride_at: StrideAt = StrideAt.CONV3X3,
    ) -> None:
        cout = planes * kind.expansion
        super().__init__(cin, cout, stride, preact=False)
        self.kind = kind
        if kind is BlockKind.BASIC:
            self.conv1 = conv3x3(cin, planes, stride)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu1 = nn.ReLU()
            self.conv2 = conv3x3(planes, planes)
            self.bn2 = nn.BatchNorm2d(planes)
            self.relu2 = nn.ReLU()
        else:
            s1, s3 = (stride, 1) if stride_at is StrideAt.CONV1X1 else (1, stride)
            self.conv1 = conv1x1(cin, inner, s1)
            self.bn1 = nn.BatchNorm2d(inner)
            self.relu1 = nn.ReLU()
            self.conv2 = conv3x3(inner, inner, s3, groups)
            self.bn2 = nn.BatchNorm2d(inner)
            self.relu2 = nn.ReLU()
            self.conv3 = conv1x1(inner, cout)
            self.bn3 = nn.BatchNorm2d(cout)
            self.relu3 = nn.ReLU()
        self._make_shortcut(shortcut)

    def forward(self, x: Tensor) -> Tensor:
        main, skip = self._split(x)
        out = self.relu1(self.bn1(self.conv1(main)))
        out = self.bn2(self.conv2(out))
        if self.kind is BlockKind.BASIC:
            return self.relu2(self._join(out, skip))
        out = self.bn3(self.conv3(self.relu2(out)))
        return self.relu3(self._join(out, skip))


class PreActBlock(ResidualBlock):
    """He et al. 2016 blocks: BN-ReLU-conv on the main path, nothing after the addition.

    Where the block projects its shortcut, the pre-activation is shared by both paths (the
    paper's Appendix and its reference code); ``skip_preact`` drops the first BN-ReLU when the
    input is already activated (the ImageNet stem's BN-ReLU-max-pool).
    """

    def __init__(
        self, kind: BlockKind, cin: int, planes: int, stride: int, shortcut: Shortcut,
        inner: int, groups: int = 1, stride_at: StrideAt = StrideAt.CONV3X3,
        skip_preact: bool = False,
    ) -> None:
        cout = planes * kind.expansion
        super().__init__(cin, cout, stride, preact=True)
        self.kind = kind
        self.bn1: nn.Module | None = None if skip_preact else nn.BatchNorm2d(cin)
        self.relu1: nn.Module | None = None if skip_preact else nn.ReLU()
        if kind is BlockKind.BASIC:
            self.conv1 = conv3x3(cin, planes, stride)
            self.bn2 = nn.BatchNorm2d(planes)
            self.relu2 = nn.ReLU()
            self.conv2 = conv3x3(planes, planes)
        else:
            s1, s3 = (stride, 1) if stride_at is StrideAt.CONV1X1 else (1, stride)
            self.conv1 = conv1x1(cin, inner, s1)
            self.bn2 = nn.BatchNorm2d(inner)
            self.relu2 = nn.ReLU()
            self.conv2 = conv3x3(inner, inner, s3, groups)
            self.bn3 = nn.BatchNorm2d(inner)
            self.relu3 = nn.ReLU()
            self.conv3 = conv1x1(inner, cout)
        self._make_shortcut(shortcut)
        self.shared_preact = self.shortcut_type is ShortcutKind.PROJECTION and not skip_preact

    def _preact(self, x: Tensor) -> Tensor:
        if self.bn1 is None or self.relu1 is None:
            return x
        return self.relu1(self.bn1(x))

    def forward(self, x: Tensor) -> Tensor:
        if self.shared_preact:
            main, skip = self._split(self._preact(x))
        else:
            main, skip = self._split(x)
            main = self._preact(main)
        out = self.conv1(main)
        out = self.conv2(self.relu2(self.bn2(out)))
        if self.kind is BlockKind.BOTTLENECK:
            out = self.conv3(self.relu3(self.bn3(out)))
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
    "Fork", "PostActBlock", "PreActBlock", "ResidualAdd", "ResidualBlock", "ZeroPadShortcut",
    "conv1x1", "conv3x3", "find_blocks", "is_residual_block", "shortcut_type",
]
