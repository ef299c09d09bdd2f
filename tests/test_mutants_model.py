"""Model-side values that surviving mutants showed to be unchecked: FastMeta really answers the
window shapes itself (and right), and the ResNet-164 preset has the paper's layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

import resviz
from resviz.measure.static import analyze_module
from resviz.model.resnet import build_model

_WINDOW_FUNCS = {
    torch.conv1d, torch.conv2d, torch.conv3d, F.max_pool1d, F.max_pool2d, F.max_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
}


class _NoSlowMeta(TorchFunctionMode):
    """Entered below FastMeta: sees only what FastMeta passes on to PyTorch. A convolution or
    pooling of a meta tensor reaching it means FastMeta fell back to PyTorch's slow meta kernels."""

    def __init__(self) -> None:
        super().__init__()
        self.fell_back: list[str] = []

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: Any = None,
    ) -> Any:
        kwargs = kwargs or {}
        first = args[0] if args else kwargs.get("input")
        if func in _WINDOW_FUNCS and isinstance(first, Tensor) and first.device.type == "meta":
            self.fell_back.append(getattr(func, "__name__", str(func)))
            raise AssertionError(f"FastMeta passed {func} to PyTorch's meta kernels")
        return func(*args, **kwargs)


class _Windows(nn.Module):
    """Convolutions and poolings with every argument FastMeta computes by formula."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(3, 8, (5, 3), stride=(2, 1), padding=(2, 0), dilation=(1, 2))
        self.conv_b = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4)
        self.pool_a = nn.MaxPool2d(3, stride=2, padding=1)
        self.pool_b = nn.MaxPool2d(2, ceil_mode=True)
        self.conv1d = nn.Conv1d(8, 4, 3, stride=2)
        self.pool1d = nn.MaxPool1d(2)
        self.adapt_int = nn.AdaptiveAvgPool2d(3)
        self.adapt_tuple = nn.AdaptiveAvgPool2d((2, 1))
        self.adapt1d = nn.AdaptiveAvgPool1d(2)
        self.pool_c = nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True)  # last window in the padding
        self.pool_default_stride = _FunctionalPool()
        self.scale = _ScaleFirst(8)

    def forward(self, x: Tensor) -> Tensor:
        ya = self.conv_a(x)
        y = self.pool_b(self.pool_a(self.conv_b(ya)))
        a = self.adapt_int(y).flatten(1)
        b = self.adapt_tuple(y).flatten(1)
        z = self.adapt1d(self.pool1d(self.conv1d(y.flatten(2)))).flatten(1)
        c = self.pool_default_stride(self.scale(self.pool_c(ya))).mean(dim=(2, 3))
        return torch.cat([a, b, z, c], dim=1)


class _FunctionalPool(nn.Module):
    """``F.max_pool2d`` without a stride: the stride defaults to the kernel size."""

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, 3)


class _ScaleFirst(nn.Module):
    """A broadcast product whose first operand is the smaller one: ``gamma * x``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((1, c, 1, 1), 2.0))

    def forward(self, x: Tensor) -> Tensor:
        return self.gamma * x


def _real_shapes(model: nn.Module, x: Tensor) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(_m: nn.Module, _a: Any, out: Any, n: str) -> None:
        if isinstance(out, Tensor):
            shapes[n] = tuple(out.shape)

    handles = [
        m.register_forward_hook(lambda m_, a_, out, n=n: hook(m_, a_, out, n))
        for n, m in model.named_modules() if n and not any(True for _ in m.children())
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


@pytest.mark.parametrize("shape", [(2, 3, 29, 23), (1, 3, 17, 40)])
def test_fastmeta_answers_conv_and_pool_shapes_itself_and_right(shape: tuple[int, ...]) -> None:
    model = _Windows()
    want = _real_shapes(model, torch.randn(shape))
    with _NoSlowMeta() as guard:
        summ = analyze_module(model, shape)
    assert guard.fell_back == []
    got = {lr.name: lr.output_shape for lr in summ.layers}
    assert got == want
    windows = {"conv_a", "conv_b", "pool_a", "pool_b", "conv1d", "pool1d", "adapt_int", "adapt_tuple", "adapt1d"}
    assert windows | {"pool_c", "pool_default_stride", "scale"} <= set(got)
    assert any(s % 2 for s in want["conv_a"][2:])  # an odd size, where ceil mode drops a window
    assert {lr.name: lr.groups for lr in summ.layers if lr.name.startswith("conv")} == {
        "conv_a": 1, "conv_b": 4, "conv1d": 1,
    }


def test_fastmeta_answers_a_resnet_without_pytorch_meta_kernels() -> None:
    model = build_model("resnet18", device="cpu").eval()
    with _NoSlowMeta() as guard:
        summ = analyze_module(model, (1, 3, 64, 48), label="resnet18")
    assert guard.fell_back == []
    want = _real_shapes(model, torch.randn(1, 3, 64, 48))
    got = {lr.name: lr.output_shape for lr in summ.layers}
    assert got == {n: s for n, s in want.items() if n in got} and len(got) > 50
    assert got["maxpool"] == (1, 64, 16, 12) and got["avgpool"] == (1, 512, 1, 1)


def test_preact_resnet164_has_the_papers_layout() -> None:
    """He et al. 2016, Table 2: ResNet-164 is 9n+2 with bottleneck blocks, n = 18 per stage, 1.7M
    parameters. (Depth 165 would give the same n, as (165 - 2) // 9 == 18: that mutant is equivalent.)"""
    spec = resviz.get_spec("preact_resnet164")
    assert spec.layers == (18, 18, 18) and spec.block == "bottleneck" and spec.preact
    summ = resviz.summarize("preact_resnet164")
    assert [s.num_blocks for s in summ.stages if s.name.endswith("_x")] == [18, 18, 18]
    main_weighted = [lr for lr in summ.layers if lr.type in ("Conv2d", "Linear") and lr.branch != "skip"]
    assert len(main_weighted) == 164
    assert round(summ.total_params / 1e5) == 17  # 1.7M
