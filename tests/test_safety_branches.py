"""Which branch is which: main and skip gradients and addends checked against autograd in the test.

The suite's identity check (main + skip = total) holds just as well with the two labels swapped.
These tests pin each label to an independent computation. For a residual block y = F(x) + S(x)
(He et al. 2015, Eq. 1), the part of dL/dx that flows back through the shortcut is the
vector-Jacobian product of S with dL/dy taken at the addition's output; for an identity shortcut it
is dL/dy itself (He et al. 2016, Eq. 5: the shortcut carries a direct copy of the deeper gradient).
The main path's part is dL/dx minus that.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import resviz

RTOL = 1e-4


def _rms(t: Tensor) -> float:
    return float(t.detach().double().square().mean().sqrt())


def _norm(t: Tensor) -> float:
    return float(t.detach().double().norm())


def _spec(name: str, block: str, preact: bool) -> resviz.ResNetSpec:
    """A small CIFAR-stem net: stage 1 starts with identity blocks, stage 2 changes shape."""
    widths = (4, 8) if block == "bottleneck" else (16, 32)
    return resviz.ResNetSpec(
        name=name, block=block, layers=(2, 2), widths=widths, stem="cifar", stem_width=16,
        preact=preact, num_classes=10,
    )


MODELS: dict[str, Callable[[], nn.Module]] = {
    "resnet20 (basic, option A)": lambda: resviz.build_model("resnet20", device="cpu"),
    "basic, option B": lambda: resviz.build_model(_spec("t_basic", "basic", False), device="cpu"),
    "bottleneck": lambda: resviz.build_model(_spec("t_bottleneck", "bottleneck", False), device="cpu"),
    "pre-activation basic": lambda: resviz.build_model(_spec("t_pre_basic", "basic", True), device="cpu"),
    "pre-activation bottleneck": lambda: resviz.build_model(_spec("t_pre_bneck", "bottleneck", True), device="cpu"),
}


def _last_main_module(block: nn.Module) -> nn.Module:
    """The main branch's last layer: BN after the last conv (post-activation, He et al. 2015,
    Fig. 2/5) or the last conv itself (pre-activation, He et al. 2016, Fig. 4e)."""
    preact = bool(getattr(block, "preact", False))
    names = ("conv3", "conv2") if preact else ("bn3", "bn2")
    for n in names:
        mod = getattr(block, n, None)
        if isinstance(mod, nn.Module):
            return mod
    raise AssertionError(f"no main-branch output layer in {type(block).__name__}")


def _reference(
    model: nn.Module, x: Tensor, t: Tensor, names: list[str],
) -> dict[str, dict[str, Tensor]]:
    """Per block, without the tracer: block input x, dL/dx, main addend, skip addend and the
    gradient at the addition's output, from one plain forward/backward with retain_grad."""
    mods = dict(model.named_modules())
    found: dict[str, dict[str, Tensor]] = {n: {} for n in names}
    handles = []
    for n in names:
        block = mods[n]
        rec = found[n]

        def pre(_m: nn.Module, args: tuple[Tensor, ...], rec: dict[str, Tensor] = rec) -> None:
            args[0].retain_grad()
            rec["x"] = args[0]

        def main_out(_m: nn.Module, _a: tuple[Tensor, ...], out: Tensor, rec: dict[str, Tensor] = rec) -> None:
            rec["main"] = out.detach().clone()

        def skip_out(_m: nn.Module, _a: tuple[Tensor, ...], out: Tensor, rec: dict[str, Tensor] = rec) -> None:
            rec["skip"] = out.detach().clone()

        def block_out(_m: nn.Module, _a: tuple[Tensor, ...], out: Tensor, rec: dict[str, Tensor] = rec) -> None:
            if getattr(_m, "preact", False):  # pre-activation: nothing after the addition
                out.retain_grad()
                rec["sum"] = out

        def post_relu_pre(_m: nn.Module, args: tuple[Tensor, ...], rec: dict[str, Tensor] = rec) -> None:
            args[0].retain_grad()  # post-activation: the final ReLU's input is the sum F(x) + S(x)
            rec["sum"] = args[0]

        handles.append(block.register_forward_pre_hook(pre))
        handles.append(_last_main_module(block).register_forward_hook(main_out))
        handles.append(block.register_forward_hook(block_out))
        if not getattr(block, "preact", False):
            final_relu = block.relu3 if hasattr(block, "bn3") else block.relu2
            handles.append(final_relu.register_forward_pre_hook(post_relu_pre))
        ds = getattr(block, "downsample", None)
        if ds is not None:
            handles.append(ds.register_forward_hook(skip_out))
    try:
        F.cross_entropy(model(x), t).backward()
    finally:
        for h in handles:
            h.remove()
    for n in names:
        rec = found[n]
        rec.setdefault("skip", rec["x"].detach().clone())  # identity shortcut: S(x) = x
        rec["dx"] = rec["x"].grad.detach().clone()  # type: ignore[union-attr]
        rec["dsum"] = rec["sum"].grad.detach().clone()  # type: ignore[union-attr]
    return found


def _skip_part(block: nn.Module, x: Tensor, dsum: Tensor) -> Tensor:
    """dL/dx through the shortcut: the VJP of S at x with dL/d(sum), by autograd in the test."""
    ds = getattr(block, "downsample", None)
    if ds is None:
        return dsum
    leaf = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(ds(leaf), leaf, dsum)
    return g


@pytest.mark.parametrize("key", list(MODELS))
def test_resviz_blocks_skip_gradient_is_the_shortcut_vjp_of_the_sum_gradient(key: str) -> None:
    """grad_skip = ||S'(x)^T dL/dy||, grad_main = ||dL/dx - that||, main_rms/skip_rms = RMS of the
    two addends, on basic, bottleneck and pre-activation blocks (swapped labels fail here)."""
    torch.manual_seed(0)
    model = MODELS[key]()
    x, t = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    tr = resviz.trace(model, inputs=x, targets=t)
    mods = dict(model.named_modules())
    # Pre-activation projection blocks fork after the shared BN-ReLU, not at the block input.
    checked = [b for b in tr.blocks if not (getattr(mods[b.name], "preact", False) and b.shortcut == "projection")]
    assert sum(b.shortcut == "identity" for b in checked) >= 2
    ref = _reference(model, x, t, [b.name for b in checked])
    for b in checked:
        r = ref[b.name]
        skip = _skip_part(mods[b.name], r["x"], r["dsum"])
        main = r["dx"] - skip
        if b.shortcut == "identity":
            torch.testing.assert_close(skip, r["dsum"])
        assert b.grad_total == pytest.approx(_norm(r["dx"]), rel=RTOL), b.name
        assert b.grad_skip == pytest.approx(_norm(skip), rel=RTOL), b.name
        assert b.grad_main == pytest.approx(_norm(main), rel=RTOL), b.name
        assert b.main_rms == pytest.approx(_rms(r["main"]), rel=RTOL), b.name
        assert b.skip_rms == pytest.approx(_rms(r["skip"]), rel=RTOL), b.name
        # The two parts really differ here, so a swap cannot pass by coincidence.
        assert not math.isclose(_norm(skip), _norm(main), rel_tol=1e-2), b.name


# -- torchvision-style blocks, written here as torchvision writes them (torchvision is not installed) --
class TVBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out

    def branches(self, xm: Tensor, xs: Tensor) -> tuple[Tensor, Tensor]:
        """Test-only, out of place: (main addend from ``xm``, skip addend from ``xs``)."""
        main = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(xm)))))
        return main, (self.downsample(xs) if self.downsample is not None else xs)


class TVBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out

    def branches(self, xm: Tensor, xs: Tensor) -> tuple[Tensor, Tensor]:
        main = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(xm))))))))
        return main, (self.downsample(xs) if self.downsample is not None else xs)


class TVNet(nn.Module):
    """Stem, two BasicBlocks (identity), a projecting Bottleneck, an identity Bottleneck, head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(TVBasicBlock(8, 8), TVBasicBlock(8, 8))
        ds = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.layer2 = nn.Sequential(TVBottleneck(8, 4, 2, ds), TVBottleneck(16, 4))
        self.fc = nn.Linear(16, 5)

    def blocks(self) -> list[nn.Module]:
        return [*self.layer1, *self.layer2]

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def split_at(self, x: Tensor, t: Tensor, k: int) -> dict[str, Tensor]:
        """Test-only: a forward/backward with block ``k``'s input fed to its two branches as two
        separate leaves, so autograd gives each branch's share of dL/dx directly."""
        blocks = self.blocks()
        with torch.no_grad():
            h = self.relu(self.bn1(self.conv1(x)))
            for b in blocks[:k]:
                h = b(h)
        xm = h.detach().clone().requires_grad_(True)
        xs = h.detach().clone().requires_grad_(True)
        main, skip = blocks[k].branches(xm, xs)  # type: ignore[operator]
        h = F.relu(main + skip)
        for b in blocks[k + 1:]:
            h = b(h)
        F.cross_entropy(self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)), t).backward()
        return {"main": xm.grad, "skip": xs.grad, "main_out": main.detach(), "skip_out": skip.detach()}  # type: ignore[dict-item]


def test_torchvision_style_blocks_branch_gradients_match_two_leaf_autograd() -> None:
    """_attach_foreign: grad_main/grad_skip equal autograd's gradients of two separate leaves fed
    to conv1 (main) and to the shortcut (skip); main_rms/skip_rms equal the addends' RMS."""
    torch.manual_seed(0)
    net = TVNet()
    x, t = torch.randn(4, 3, 8, 8), torch.randint(0, 5, (4,))
    tr = resviz.trace(net, inputs=x, targets=t)
    assert [b.name for b in tr.blocks] == ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]
    assert [b.shortcut for b in tr.blocks] == ["identity", "identity", "projection", "identity"]
    for k, b in enumerate(tr.blocks):
        ref = net.split_at(x, t, k)
        assert b.grad_main == pytest.approx(_norm(ref["main"]), rel=RTOL), b.name
        assert b.grad_skip == pytest.approx(_norm(ref["skip"]), rel=RTOL), b.name
        assert b.grad_total == pytest.approx(_norm(ref["main"] + ref["skip"]), rel=RTOL), b.name
        assert b.main_rms == pytest.approx(_rms(ref["main_out"]), rel=RTOL), b.name
        assert b.skip_rms == pytest.approx(_rms(ref["skip_out"]), rel=RTOL), b.name
        assert not math.isclose(_norm(ref["main"]), _norm(ref["skip"]), rel_tol=1e-2), b.name
    assert all(m.inplace for m in net.modules() if isinstance(m, nn.ReLU))


def test_torchvision_style_identity_skip_gradient_is_the_sum_gradient() -> None:
    """The brief's form for identity blocks: the skip share of dL/dx is dL/d(out) at the addition."""
    torch.manual_seed(1)
    net = TVNet()
    x, t = torch.randn(2, 3, 8, 8), torch.randint(0, 5, (2,))
    tr = resviz.trace(net, inputs=x, targets=t)
    blocks = net.blocks()
    for k, b in enumerate(tr.blocks):
        if b.shortcut != "identity":
            continue
        with torch.no_grad():
            h = net.relu(net.bn1(net.conv1(x)))
            for blk in blocks[:k]:
                h = blk(h)
        xin = h.detach().clone().requires_grad_(True)
        main, skip = blocks[k].branches(xin, xin)  # type: ignore[operator]
        s = main + skip
        s.retain_grad()
        h = F.relu(s)
        for blk in blocks[k + 1:]:
            h = blk(h)
        F.cross_entropy(net.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)), t).backward()
        assert b.grad_skip == pytest.approx(_norm(s.grad), rel=RTOL), b.name  # type: ignore[arg-type]
        assert b.grad_main == pytest.approx(_norm(xin.grad - s.grad), rel=RTOL), b.name  # type: ignore[operator]
        assert b.grad_total == pytest.approx(_norm(xin.grad), rel=RTOL), b.name  # type: ignore[arg-type]
