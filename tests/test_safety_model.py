"""Block functions against formulas written in the test (He et al. 2015; He et al. 2016)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import resviz


def _capture(mod: nn.Module) -> tuple[dict[str, Tensor], object]:
    box: dict[str, Tensor] = {}

    def hook(_m: nn.Module, _a: tuple[Tensor, ...], out: Tensor) -> None:
        box["out"] = out.detach().clone()

    return box, mod.register_forward_hook(hook)


def _option_a(x: Tensor, cout: int) -> Tensor:
    """He et al. 2015, Sec. 3.3 / 4.2, option A: identity on the strided input (every second
    row and column, from the first), the input's channels first and zero channels appended."""
    sub = x[:, :, ::2, ::2]
    zeros = torch.zeros(x.shape[0], cout - x.shape[1], *sub.shape[2:], dtype=x.dtype)
    return torch.cat([sub, zeros], dim=1)


@pytest.mark.parametrize("block_name", ["layer2.0", "layer3.0"])
def test_option_a_shortcut_is_strided_identity_with_zeros_behind(block_name: str) -> None:
    """resnet20's downsampling blocks: the shortcut output equals x[:, :, ::2, ::2] followed by
    zero channels, and the block output equals relu(main + that) (post-activation, Fig. 2)."""
    torch.manual_seed(0)
    model = resviz.build_model("resnet20", device="cpu").eval()
    block = dict(model.named_modules())[block_name]
    cin, cout = block.conv1.in_channels, block.conv2.out_channels  # type: ignore[union-attr]
    assert cout == 2 * cin
    x = torch.randn(2, cin, 8, 8)
    want = _option_a(x, cout)
    skip_box, h1 = _capture(block.downsample)  # type: ignore[arg-type]
    main_box, h2 = _capture(block.bn2)  # type: ignore[arg-type]
    with torch.no_grad():
        y = block(x)
    h1.remove()  # type: ignore[attr-defined]
    h2.remove()  # type: ignore[attr-defined]
    assert torch.equal(skip_box["out"], want)
    assert torch.equal(skip_box["out"][:, cin:], torch.zeros_like(want[:, cin:]))
    torch.testing.assert_close(y, F.relu(main_box["out"] + want))
    assert sum(p.numel() for p in block.downsample.parameters()) == 0  # type: ignore[union-attr]


def test_option_a_in_a_traced_model_reports_the_padded_skip_rms() -> None:
    """Trace of resnet20: the zero-pad blocks' skip_rms is the RMS of the padded strided input
    (half the channels are zeros), computed here from the block input."""
    torch.manual_seed(0)
    model = resviz.build_model("resnet20", device="cpu")
    x = torch.randn(2, 3, 16, 16)
    tr = resviz.trace(model, inputs=x)
    mods = dict(model.named_modules())
    inputs: dict[str, Tensor] = {}
    handles = []
    for b in tr.blocks:
        if b.shortcut == "zero-pad":
            def pre(_m: nn.Module, args: tuple[Tensor, ...], name: str = b.name) -> None:
                inputs[name] = args[0].detach().clone()

            handles.append(mods[b.name].register_forward_pre_hook(pre))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    assert set(inputs) == {"layer2.0", "layer3.0"}
    for name, xin in inputs.items():
        skip = _option_a(xin, 2 * xin.shape[1])
        assert tr.block(name).skip_rms == pytest.approx(float(skip.square().mean().sqrt()), rel=1e-5)


def test_preactivation_blocks_follow_he_2016() -> None:
    """He et al. 2016, Fig. 4(e): x + conv2(relu(bn2(conv1(relu(bn1(x)))))), nothing after the
    addition; where the shortcut projects, it projects the shared pre-activation relu(bn1(x))."""
    torch.manual_seed(0)
    spec = resviz.ResNetSpec(name="t_pre", block="basic", layers=(2, 2), widths=(8, 16), stem="cifar",
                             stem_width=8, preact=True, num_classes=10)
    model = resviz.build_model(spec, device="cpu").eval()
    mods = dict(model.named_modules())
    with torch.no_grad():
        for m in model.modules():  # non-trivial BN statistics, so a missing BN would show
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
        ident = mods["layer1.1"]
        x = torch.randn(2, 8, 8, 8)
        a = F.relu(ident.bn1(x))  # type: ignore[operator]
        want = x + ident.conv2(F.relu(ident.bn2(ident.conv1(a))))  # type: ignore[operator]
        torch.testing.assert_close(ident(x), want)
        proj = mods["layer2.0"]
        a = F.relu(proj.bn1(x))  # type: ignore[operator]
        want = proj.downsample(a) + proj.conv2(F.relu(proj.bn2(proj.conv1(a))))  # type: ignore[operator]
        torch.testing.assert_close(proj(x), want)


def test_bottleneck_post_activation_block_function() -> None:
    """He et al. 2015, Fig. 5 right (torchvision v1.5 stride on the 3x3):
    relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1 x))))))) + S(x))."""
    torch.manual_seed(0)
    spec = resviz.ResNetSpec(name="t_bneck", block="bottleneck", layers=(2, 2), widths=(4, 8), stem="cifar",
                             stem_width=16, num_classes=10)
    model = resviz.build_model(spec, device="cpu").eval()
    mods = dict(model.named_modules())
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
        x = torch.randn(2, 16, 8, 8)
        for name in ("layer1.1", "layer2.0"):
            b = mods[name]
            main = b.bn3(b.conv3(F.relu(b.bn2(b.conv2(F.relu(b.bn1(b.conv1(x))))))))  # type: ignore[operator]
            skip = x if b.downsample is None else b.downsample(x)  # type: ignore[operator]
            torch.testing.assert_close(b(x), F.relu(main + skip))
            if name == "layer2.0":
                assert b.conv2.stride == (2, 2) and b.conv1.stride == (1, 1)  # type: ignore[union-attr]
