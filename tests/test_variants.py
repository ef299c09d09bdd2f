"""Normalisation and initialisation variants: norm=none, Fixup, SkipInit, ReZero.

Every expectation is computed here from the papers' definitions (Fixup: Zhang et al. 2019,
arXiv:1901.09321; SkipInit: De & Smith 2020, arXiv:2002.10444; ReZero: Bachlechner et al. 2020,
arXiv:2003.04887) with plain tensor operations, hooks and autograd, never with resviz's own code.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import resviz
from resviz.api.targets import parse_overrides, resolve_spec
from resviz.errors import ResvizError
from resviz.measure.tracer import branch_gradients
from resviz.model.blocks import BranchScale, ResidualBlock, ScalarBias
from resviz.model.resnet import build_model
from resviz.spec import Init, Norm, ResNetSpec, load_spec_file
from resviz.zoo import get_spec, list_models, skip_twin

DATA = Path(__file__).parent / "data"
VARIANTS = ("fixup_resnet110", "skipinit_resnet56", "rezero_resnet56", "resnet56_nonorm")


def _small(target: str, layers: tuple[int, ...] | None = None) -> ResNetSpec:
    spec = resolve_spec(target)
    return dataclasses.replace(spec, layers=layers or (2,) * len(spec.layers))


def _seeded(spec: ResNetSpec, seed: int = 0) -> Any:  # a ResNet, whose layers tests read by name
    torch.manual_seed(seed)
    return build_model(spec, device="cpu")


def _blocks(model: nn.Module) -> list[tuple[str, Any]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ResidualBlock)]


# -- spec fields -----------------------------------------------------------------------------------
def test_defaults_keep_every_preset_and_old_spec_dicts() -> None:
    for name in list_models(include_plain=True):
        spec = get_spec(name)
        assert (spec.norm, spec.init) == (Norm.BATCH, Init.KAIMING), name
    old = {k: v for k, v in get_spec("resnet20").to_dict().items() if k not in ("norm", "init")}
    assert ResNetSpec.from_dict(old) == get_spec("resnet20")
    assert get_spec("resnet20").to_dict()["norm"] == "batch" and get_spec("resnet20").to_dict()["init"] == "kaiming"


def test_spec_files_and_set_overrides_accept_norm_and_init(tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    path.write_text("block: basic\nlayers: [1, 1, 1]\nwidths: [16, 32, 64]\nstem: cifar\nshortcut: A\n"
                    "norm: none\ninit: fixup\n", encoding="utf-8")
    spec = load_spec_file(path)
    assert (spec.norm, spec.init, spec.name) == (Norm.NONE, Init.FIXUP, "net")
    changes = parse_overrides(["norm=none", "init=rezero"])
    assert changes == {"norm": "none", "init": "rezero"}
    derived = resolve_spec("resnet56", overrides=changes)
    assert (derived.norm, derived.init, derived.name) == (Norm.NONE, Init.REZERO, "resnet56-custom")
    assert ResNetSpec.from_dict(json.loads(json.dumps(derived.to_dict()))) == derived


@pytest.mark.parametrize(("changes", "words"), [
    ({"norm": "layer"}, ["invalid norm 'layer'", "batch, none"]),
    ({"init": "xavier"}, ["invalid init 'xavier'", "kaiming, fixup, skipinit, rezero"]),
    ({"init": "rezero", "shortcut": "none"}, ["init=rezero", "needs shortcuts"]),
    ({"init": "fixup", "preact": True}, ["init=fixup", "post-activation", "preact=false"]),
])
def test_impossible_combinations_are_one_line_errors(changes: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ResvizError) as err:
        ResNetSpec.from_dict({**get_spec("resnet20").to_dict(), **changes})
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


# -- structure -------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["resnet56_nonorm", "skipinit_resnet56", "resnet50@norm=none",
                                    "preact_resnet18@norm=none", "preact_resnet164@norm=none,init=rezero"])
def test_norm_none_has_no_batchnorm_and_biased_convolutions(target: str) -> None:
    model = build_model(_small(target), device="meta")
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.bias is not None and c.bias.shape == (c.out_channels,) for c in convs)
    assert not any(isinstance(m, ScalarBias) for m in model.modules())
    assert not any(k.startswith(("bn", "final_bn")) or ".bn" in k for k in model.state_dict())


def test_fixup_layout_scalar_biases_and_multipliers() -> None:
    model = _seeded(_small("fixup_resnet110"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))
    blocks = _blocks(model)
    for name, block in blocks:
        # Sec. 3 of the paper: a bias before each conv and activation, a multiplier and a bias last.
        for attr in ("bias1a", "bias1b", "bias2a"):
            assert isinstance(getattr(block, attr), ScalarBias), f"{name}.{attr}"
        scale = block.scale
        assert isinstance(scale, BranchScale) and scale.bias is not None
        assert scale.weight.item() == 1.0 and scale.bias.item() == 0.0
    biases = [m for m in model.modules() if isinstance(m, ScalarBias)]
    assert len(biases) == 3 * len(blocks) + 2  # per block, plus the stem's and the classifier's
    assert all(b.bias.item() == 0.0 and b.bias.shape == (1,) for b in biases)


# -- Fixup initialisation --------------------------------------------------------------------------
@pytest.mark.parametrize(("target", "m"), [("fixup_resnet110", 2), ("resnet50@init=fixup,norm=none", 3)])
def test_fixup_zeroes_last_layers_and_scales_the_others(target: str, m: int) -> None:
    full = resolve_spec(target)
    spec = full if m == 2 else dataclasses.replace(full, layers=(1, 1, 1, 1), widths=(8, 16, 16, 32))
    fixup = _seeded(spec)
    # The same layers, He-initialised as every preset, from the same seed: BatchNorm layers and
    # Fixup's scalars draw no random numbers, so the two networks draw the same weights.
    he = _seeded(dataclasses.replace(spec, norm=Norm.BATCH, init=Init.KAIMING))
    big_l = sum(spec.layers)
    factor = big_l ** (-1.0 / (2 * m - 2))
    assert factor < 1.0
    he_blocks = dict(_blocks(he))
    for name, block in _blocks(fixup):
        convs = [getattr(block, f"conv{i + 1}") for i in range(m)]
        ref = [getattr(he_blocks[name], f"conv{i + 1}") for i in range(m)]
        assert torch.count_nonzero(convs[-1].weight) == 0, name
        for conv, base in zip(convs[:-1], ref[:-1], strict=True):
            assert base.weight.abs().sum() > 0
            torch.testing.assert_close(conv.weight, base.weight * factor, rtol=1e-6, atol=0)
        if isinstance(block.downsample, nn.Sequential):  # a projection is no branch layer: He only
            torch.testing.assert_close(block.downsample[0].weight, he_blocks[name].downsample[0].weight)
    assert torch.count_nonzero(fixup.fc.weight) == 0 and torch.count_nonzero(fixup.fc.bias) == 0
    torch.testing.assert_close(fixup.conv1.weight, he.conv1.weight)  # the stem is no branch layer


def test_fixup_network_starts_with_zero_logits_and_identity_blocks() -> None:
    model = _seeded(_small("fixup_resnet110")).train()
    x = torch.randn(3, 3, 32, 32)
    assert torch.count_nonzero(model(x)) == 0  # zero classifier (rule 1)
    _assert_blocks_start_as_skip(model, x, post_relu=True)


# -- SkipInit and ReZero ---------------------------------------------------------------------------
def _zero_pad(x: Tensor, stride: int, cout: int) -> Tensor:
    """Option A of He et al. 2015, written out: subsample, then zero channels at the end."""
    sub = x[:, :, ::stride, ::stride]
    extra = torch.zeros(sub.shape[0], cout - sub.shape[1], *sub.shape[2:])
    return torch.cat([sub, extra], dim=1)


def _assert_blocks_start_as_skip(model: nn.Module, x: Tensor, post_relu: bool) -> None:
    seen: dict[str, tuple[Tensor, Tensor]] = {}

    def keep(name: str) -> Any:
        def hook(_m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            seen[name] = (args[0].detach(), out.detach())
        return hook

    handles = [b.register_forward_hook(keep(n)) for n, b in _blocks(model)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    assert len(seen) == len(_blocks(model))
    for name, block in _blocks(model):
        inp, out = seen[name]
        cout, stride = block.out_channels, block.stride
        skip = inp if (stride == 1 and inp.shape[1] == cout) else _zero_pad(inp, stride, cout)
        expected = skip.clamp(min=0) if post_relu else skip
        torch.testing.assert_close(out, expected, rtol=0, atol=0, msg=name)
        assert out.abs().sum() > 0, name


@pytest.mark.parametrize(("target", "post_relu"), [
    ("rezero_resnet56", True),
    ("skipinit_resnet56", True),
    ("resnet56@norm=none,init=rezero", True),
    ("preact_resnet164@init=rezero,shortcut=A", False),
    ("preact_resnet164@init=skipinit,norm=none,shortcut=A", False),
])
def test_skipinit_and_rezero_blocks_start_as_their_skip_path(target: str, post_relu: bool) -> None:
    model = _seeded(_small(target, layers=(2, 2, 2))).train()
    scales = [b.scale for _, b in _blocks(model)]
    assert all(isinstance(s, BranchScale) and s.weight.item() == 0.0 and s.bias is None for s in scales)
    _assert_blocks_start_as_skip(model, torch.randn(2, 3, 32, 32), post_relu)


def test_branch_scale_multiplies_the_branch_the_add_receives() -> None:
    """With alpha = 0.5 the block computes relu(skip + 0.5 * F(x)), F written out here."""
    model = _seeded(_small("resnet56@norm=none,init=rezero", layers=(1, 1, 1)))
    block = model.layer1[0]
    with torch.no_grad():
        block.scale.weight.fill_(0.5)
        x = torch.randn(2, 16, 8, 8)
        branch = F.conv2d(F.relu(F.conv2d(x, block.conv1.weight, block.conv1.bias, padding=1)),
                          block.conv2.weight, block.conv2.bias, padding=1)
        seen: list[Tensor] = []
        handle = block.add.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        out = block(x)
        handle.remove()
    torch.testing.assert_close(seen[0], 0.5 * branch)
    torch.testing.assert_close(out, F.relu(x + 0.5 * branch))


# -- the tracer's branch split ---------------------------------------------------------------------
def _direct_totals(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """dL/d(fork input) by autograd on retained tensors, L the mean square of the logits. The fork
    input is the block input, or its pre-activation where a pre-activation block shares it with a
    projection shortcut (He et al. 2016)."""
    inputs: dict[str, Tensor] = {}

    def keep(name: str) -> Any:
        def hook(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
            args[0].retain_grad()
            inputs[name] = args[0]
        return hook

    handles = [b.fork.register_forward_pre_hook(keep(n)) for n, b in _blocks(model)]
    model(x).float().square().mean().backward()
    for h in handles:
        h.remove()
    grads = {n: t.grad.detach().clone() for n, t in inputs.items() if t.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _perturb(model: Any) -> None:
    """Move a variant off its initial point (nonzero multipliers, last layers and classifier), so
    that both branches carry gradient."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BranchScale):
                m.weight.fill_(0.5)
            elif isinstance(m, ScalarBias):
                m.bias.fill_(0.01)
        for _, block in _blocks(model):
            last = block.branch_convs()[-1]
            last.weight.copy_(torch.randn(last.weight.shape, generator=gen) * 0.05)
        model.fc.weight.copy_(torch.randn(model.fc.weight.shape, generator=gen) * 0.1)


@pytest.mark.parametrize("target", [
    *VARIANTS, "resnet18@norm=none,init=skipinit", "preact_resnet164@init=rezero", "resnet50@init=fixup",
])
def test_main_plus_skip_is_total_on_every_variant(target: str) -> None:
    spec = _small(target, layers=(1, 1, 1, 1) if target.startswith("resnet") and "@" in target else None)
    model = _seeded(spec)
    _perturb(model)
    x = torch.randn(2, 3, 32, 32)
    vectors = branch_gradients(model, x)
    direct = _direct_totals(model, x)
    assert set(vectors) == set(direct) and len(vectors) == sum(spec.layers)
    for name, v in vectors.items():
        main, skip, total = v["main"], v["skip"], v["total"]
        assert total.abs().sum() > 0 and main.abs().sum() > 0 and skip.abs().sum() > 0, name
        torch.testing.assert_close(main + skip, total, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(total, direct[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("target", ["rezero_resnet56", "skipinit_resnet56"])
def test_at_init_every_gradient_reaches_a_zero_alpha_block_through_its_skip(target: str) -> None:
    model = _seeded(_small(target))
    x = torch.randn(2, 3, 32, 32)
    vectors = branch_gradients(model, x)
    direct = _direct_totals(model, x)
    for name, v in vectors.items():
        assert torch.count_nonzero(v["main"]) == 0, name
        torch.testing.assert_close(v["skip"], direct[name], rtol=1e-5, atol=1e-7)
        assert direct[name].abs().sum() > 0


def test_a_trace_leaves_a_fixup_model_as_it_was() -> None:
    model = _seeded(_small("fixup_resnet110", layers=(1, 1, 1))).train()
    _perturb(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tr = resviz.trace(model, inputs=torch.randn(2, 3, 32, 32), targets=torch.tensor([1, 2]))
    assert [b.name for b in tr.blocks] == ["layer1.0", "layer2.0", "layer3.0"]
    assert all(b.grad_main and b.grad_skip for b in tr.blocks)
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


# -- presets and targets ---------------------------------------------------------------------------
def test_variant_presets_are_listed_apart_with_plain_twins() -> None:
    assert not set(VARIANTS) & set(list_models(include_plain=True))
    assert list_models(include_variants=True)[-len(VARIANTS):] == list(VARIANTS)
    fixup = get_spec("fixup_resnet110")
    assert (fixup.layers, fixup.norm, fixup.init, fixup.num_classes) == ((18, 18, 18), Norm.NONE, Init.FIXUP, 10)
    twin = get_spec("plain_fixup_resnet110")
    assert twin == fixup.plain() and twin.shortcut.value == "none" and twin.init is Init.KAIMING
    assert twin.norm is Norm.NONE
    assert skip_twin("plain_fixup_resnet110") == "fixup_resnet110"
    assert "plain_rezero_resnet56" in list_models(include_plain=True, include_variants=True)
    assert get_spec("rezero_resnet56").norm is Norm.BATCH


def test_per_model_overrides_name_the_variant() -> None:
    spec = resolve_spec("resnet110@init=fixup")
    base = get_spec("resnet110")
    assert spec.name == "resnet110@init=fixup"
    assert spec == dataclasses.replace(base, name=spec.name, init=Init.FIXUP)
    two = resolve_spec("ResNet56@norm=none,init=rezero")
    assert two.name == "resnet56@norm=none,init=rezero"
    assert (two.norm, two.init, two.layers) == (Norm.NONE, Init.REZERO, (9, 9, 9))
    lists = resolve_spec("resnet56@layers=2,2,2,init=skipinit")
    assert lists.layers == (2, 2, 2) and lists.name == "resnet56@layers=2,2,2,init=skipinit"
    assert resolve_spec("resnet56@norm=batch") == get_spec("resnet56")  # no change: the preset itself
    assert resolve_spec("resnet56@norm=none,init=rezero", plain=True).name == "plain56@norm=none"
    summary = resviz.summarize("resnet20@norm=none")
    assert summary.model == "resnet20@norm=none" and not summary.notes
    assert summary.total_params == sum(p.numel() for p in build_model(
        dataclasses.replace(get_spec("resnet20"), norm=Norm.NONE), device="cpu").parameters())


@pytest.mark.parametrize(("target", "words"), [
    ("resnet110@init=foo", ["resnet110@init=foo", "kaiming, fixup, skipinit, rezero"]),
    ("@", ["MODEL@KEY=VALUE", "resnet110@init=fixup"]),
    ("resnet110@", ["MODEL@KEY=VALUE"]),
    ("resnet110@init", ["'init' is not KEY=VALUE"]),
    ("resnet110@colour=red", ["unknown key 'colour'", "norm", "init", "layers"]),
    ("resnet110@name=x", ["unknown key 'name'"]),
    ("plain110@init=fixup", ["needs shortcuts"]),
    ("resnet110@norm=group", ["invalid norm 'group'", "batch, none"]),
])
def test_bad_per_model_overrides_are_one_line_errors(target: str, words: list[str]) -> None:
    with pytest.raises(ResvizError) as err:
        resolve_spec(target)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


# -- existing presets are unchanged ----------------------------------------------------------------
def test_resnet18_state_dict_is_still_torchvisions(tv_reference: dict[str, Any]) -> None:
    model = build_model("resnet18", device="meta")
    keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert keys == tv_reference["resnet18"]["state_dict"]


def test_resnet20_layers_are_still_those_of_the_stored_summary() -> None:
    stored = json.loads((DATA / "v0" / "summary-resnet20.json").read_text())
    model = build_model("resnet20", device="meta")
    # Summaries list every leaf that computes; the parameter-free fork only hands out views.
    leaves = {n: sum(p.numel() for p in m.parameters()) for n, m in model.named_modules()
              if n and not list(m.children()) and not n.endswith(".fork")}
    assert {r["name"]: r["params"] for r in stored["layers"]} == leaves
    assert not any(isinstance(m, (ScalarBias, BranchScale)) for m in model.modules())
