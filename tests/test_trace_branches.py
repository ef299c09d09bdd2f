"""Main + skip = total, as vectors, at the fork of every block of every preset.

The deepest presets (and the widest, whose weights alone take seconds to initialise on a CPU)
are checked on the same spec with two blocks per stage (``dataclasses.replace(spec, layers=...)``):
the same block kinds, widths, groups, shortcuts and stems, at a fraction of the cost.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import resviz
from resviz.measure.tracer import branch_gradients
from resviz.model.resnet import build_model
from resviz.zoo import get_spec, list_models

REDUCED = {
    "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2", "resnext50_32x4d",
    "resnext101_32x8d", "resnext101_64x4d", "resnet1202", "preact_resnet1001", "preact_resnet101",
    "preact_resnet152", "preact_resnet200",
}


def _check_identity(vectors: dict[str, dict[str, Tensor]], plain: bool = False) -> None:
    assert vectors, "no block was captured"
    for name, v in vectors.items():
        total = v["total"]
        assert total.abs().sum() > 0, name
        if plain:
            assert "skip" not in v
            torch.testing.assert_close(v["main"], total)
            continue
        main, skip = v["main"], v["skip"]
        assert main.shape == skip.shape == total.shape
        torch.testing.assert_close(main + skip, total, rtol=1e-5, atol=1e-7)
        # Both parts must be real contributions, not the total copied into one of them.
        assert skip.abs().sum() > 0 and main.abs().sum() > 0, name
        assert not torch.allclose(main, total), name


@pytest.mark.parametrize("name", list_models())
def test_main_plus_skip_is_total_on_every_preset(name: str) -> None:
    spec = get_spec(name)
    if name in REDUCED:
        spec = dataclasses.replace(spec, layers=(2,) * len(spec.layers))
    torch.manual_seed(0)
    model = build_model(spec, device="cpu")
    vectors = branch_gradients(model, torch.randn(2, 3, 32, 32))
    assert len(vectors) == sum(spec.layers)
    _check_identity(vectors)


def test_plain_twin_has_no_skip_gradient() -> None:
    """A plain block's gradients equal dL/dx at its input, computed here without the tracer."""
    torch.manual_seed(0)
    model = build_model("resnet20", device="cpu", plain=True)
    _check_identity(branch_gradients(model, torch.randn(2, 3, 32, 32)), plain=True)
    x, t = torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))
    tr = resviz.trace(model, inputs=x, targets=t)
    assert len(tr.blocks) == 9
    inputs: dict[str, Tensor] = {}

    def keep(name: str) -> object:
        def hook(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
            args[0].retain_grad()
            inputs[name] = args[0]
        return hook

    blocks = dict(model.named_modules())
    handles = [blocks[b.name].register_forward_pre_hook(keep(b.name)) for b in tr.blocks]  # type: ignore[arg-type]
    F.cross_entropy(model(x), t).backward()
    for h in handles:
        h.remove()
    for b in tr.blocks:
        direct = float(inputs[b.name].grad.norm())  # type: ignore[union-attr]
        assert b.shortcut == "none" and b.grad_skip == 0.0 and b.skip_rms == 0.0
        assert b.grad_total == pytest.approx(direct, rel=1e-4) and b.grad_main == pytest.approx(direct, rel=1e-4)


def test_trace_norms_match_the_vectors() -> None:
    torch.manual_seed(1)
    model = build_model("resnet20", device="cpu")
    x, t = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    tr = resviz.trace(model, inputs=x, targets=t)
    vectors = branch_gradients(model, x, loss=lambda out, _: F.cross_entropy(out, t))
    for b in tr.blocks:
        v = vectors[b.name]
        assert b.grad_main == pytest.approx(float(v["main"].norm()), rel=1e-4)
        assert b.grad_skip == pytest.approx(float(v["skip"].norm()), rel=1e-4)
        assert b.grad_total == pytest.approx(float(v["total"].norm()), rel=1e-4)


# -- a torchvision-style network: in-place ReLU, ``out += identity``, ``downsample`` ------------------
class TVBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TVNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(TVBlock(8, 8, 1), TVBlock(8, 8, 1))
        self.layer2 = nn.Sequential(TVBlock(8, 16, 2), TVBlock(16, 16, 1))
        self.fc = nn.Linear(16, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


def test_torchvision_style_blocks_are_split_and_restored() -> None:
    torch.manual_seed(0)
    net = TVNet()
    x = torch.randn(2, 3, 16, 16)
    _check_identity(branch_gradients(net, x))
    tr = resviz.trace(net, inputs=x)
    assert [b.name for b in tr.blocks] == ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]
    assert [b.shortcut for b in tr.blocks] == ["identity", "identity", "projection", "identity"]
    for b in tr.blocks:
        assert b.grad_main and b.grad_skip and b.grad_total
        assert b.grad_total <= b.grad_main + b.grad_skip + 1e-6
        assert b.main_rms > 0 and b.skip_rms > 0
    # bn2's output is recorded before ``out += identity`` rewrites it in place.
    bn2 = tr.layer("layer1.0.bn2")
    assert bn2.mean == pytest.approx(0.0, abs=1e-4) and bn2.std == pytest.approx(1.0, rel=1e-2)
    assert all(m.inplace for m in net.modules() if isinstance(m, nn.ReLU))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
