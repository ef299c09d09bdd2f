"""Branch statistics of models resviz did not build: every residual addition found in the computation
of each test-local block family (tests/families) and of the real HuggingFace ResNet gets its exact
split, checked against gradients that hooks written here take at the blocks' own inputs and outputs."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import resviz
from resviz.measure.outputs import logits
from resviz.measure.structure import discover
from resviz.measure.tracer import branch_gradients

POST_ACT = ("tv_resnet", "cifar_resnet", "timm_seresnet", "timm_ecaresnet", "timm_resnet_d", "timm_regnety",
            "hf_resnet")
"""Families whose blocks apply a ReLU to the sum: the skip's gradient at x is relu'(out) * dL/d(out)."""
PRE_ACT = ("timm_resnetv2", "convnext", "vit")
"""Families whose blocks return the sum itself: the skip's gradient at x is dL/d(out)."""


def _model(family: str) -> tuple[nn.Module, Any]:
    mod = importlib.import_module(f"tests.families.{family}")
    torch.manual_seed(0)
    return mod.build(), mod


def _block_gradients(model: nn.Module, names: set[str]) -> tuple[dict[str, list[Tensor]], list[Any]]:
    """Hooks that keep, per named module call, its output and the gradients at its input and output."""
    got: dict[str, list[Tensor]] = {}
    mods = dict(model.named_modules())
    handles = []
    for name in names:
        def pre(_m: nn.Module, args: Any, name: str = name) -> None:
            x = args[0]
            if x.requires_grad:
                x.register_hook(lambda g, name=name: got.__setitem__(f"{name}/in", g.detach().clone()))

        def post(_m: nn.Module, _a: Any, out: Tensor, name: str = name) -> None:
            got[f"{name}/out"] = out.detach().clone()
            out.register_hook(lambda g, name=name: got.__setitem__(f"{name}/gout", g.detach().clone()))

        handles += [mods[name].register_forward_pre_hook(pre), mods[name].register_forward_hook(post)]
    return got, handles


def _close(a: Tensor, b: Tensor) -> None:
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-7 * float(b.abs().max())), float((a - b).abs().max())


@pytest.mark.parametrize("family", POST_ACT + PRE_ACT)
def test_every_found_block_splits_exactly(family: str) -> None:
    model, mod = _model(family)
    x = torch.randn(mod.INPUT)
    sites = discover(model, mod.INPUT).sites
    assert sites
    got, handles = _block_gradients(model, {s.module for s in sites})
    vectors = branch_gradients(model, x)
    for h in handles:
        h.remove()
    assert list(vectors) == [s.name for s in sites]
    one_per_call = {s.module for s in sites if s.index == 1} - {s.module for s in sites if s.index > 1}
    for s in sites:
        v = vectors[s.name]
        _close(v["main"] + v["skip"], v["total"])
        if s.shortcut != "identity":
            continue
        if s.module in one_per_call:  # its input is x, its output the sum (after a ReLU in post-activation)
            _close(v["total"], got[f"{s.module}/in"])
            relu = (got[f"{s.module}/out"] > 0).float() if family in POST_ACT else 1.0
            _close(v["skip"], relu * got[f"{s.module}/gout"])
    if family == "vit":  # two per block: the second's skip is dL/d(out), the first's the second's total
        for block in sorted({s.module for s in sites}):
            first, second = vectors[f"{block}:1"], vectors[f"{block}:2"]
            _close(second["skip"], got[f"{block}/gout"])
            _close(first["skip"], second["total"])
            _close(first["total"], got[f"{block}/in"])


@pytest.mark.parametrize("family", POST_ACT + PRE_ACT)
def test_trace_records_every_found_block_and_leaves_the_model_as_it_was(family: str) -> None:
    model, mod = _model(family)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    tr = resviz.trace(model, inputs=torch.randn(mod.INPUT))
    names = [s.name for s in discover(model, mod.INPUT).sites]
    assert [b.name for b in tr.blocks] == names
    for b in tr.blocks:
        assert b.grad_main is not None and b.grad_skip is not None and b.grad_total is not None
        assert b.main_rms > 0 and b.skip_rms > 0
    assert not any("plain" in n for n in tr.notes) and not any("other operations" in n for n in tr.notes)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert [m.training for m in model.modules()] == modes
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks
    assert all(p.grad is None for p in model.parameters())


def test_addend_rms_are_those_of_the_operands_actually_added() -> None:
    """ViT's second residual of the first block: x + mlp(norm2(x)); both operands computed here."""
    model, mod = _model("vit")
    model.eval()
    x = torch.randn(mod.INPUT)
    seen: dict[str, Tensor] = {}
    block = model.get_submodule("blocks.0")
    h1 = block.mlp.register_forward_hook(lambda _m, _a, out: seen.__setitem__("mlp", out.detach().clone()))
    h2 = block.norm2.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x1", args[0].detach().clone()))
    tr = resviz.trace(model, inputs=x)
    h1.remove()
    h2.remove()
    b = next(b for b in tr.blocks if b.name == "blocks.0:2")
    assert b.main_rms == pytest.approx(float(seen["mlp"].square().mean().sqrt()), rel=1e-5)
    assert b.skip_rms == pytest.approx(float(seen["x1"].square().mean().sqrt()), rel=1e-5)


class _DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"features": self.conv(x), "aux": x}


def test_outputs_without_logits_are_refused_in_one_line_naming_their_fields() -> None:
    with pytest.raises(resviz.ResvizError) as err:
        resviz.trace(_DictOut(), inputs=torch.randn(2, 3, 8, 8))
    assert str(err.value) == ("_DictOut returns dict with fields features, aux, with no logits to find (a tensor, "
                              "or a 'logits' or 'out' field): pass loss= to say what to differentiate")


def test_a_huggingface_output_with_a_loss_of_its_own() -> None:
    """loss= receives the ModelOutput itself; targets are made from its logits' shape."""
    model, mod = _model("hf_resnet")
    tr = resviz.trace(model, inputs=torch.randn(mod.INPUT),
                      loss=lambda out, _t: out.logits.square().mean())
    assert len(tr.blocks) == len(discover(model, mod.INPUT).sites) and tr.loss > 0


@pytest.mark.parametrize("family", ["tv_resnet", "vit", "hf_resnet"])
def test_the_monitor_records_the_same_blocks_as_a_trace(family: str) -> None:
    """One recorded training step of the monitor against branch_gradients on the same batch."""
    model, mod = _model(family)
    model.eval()  # no dropout or batch statistics: two forwards give the same numbers
    x = torch.randn(mod.INPUT)
    want = branch_gradients(model, x)
    with resviz.monitor(model, every=1) as mon:
        model.train(False)
        for m in model.modules():
            m.training = m is model  # the monitor counts training forwards of the model itself
        out = model(x)
        logits(out, family).float().square().mean().backward()
    snap = mon.series.snapshots[0]
    assert [b.name for b in snap.blocks] == list(want)
    for b in snap.blocks:
        for key in ("main", "skip", "total"):
            assert getattr(b, f"grad_{key}") == pytest.approx(float(want[b.name][key].norm()), rel=1e-5)


@pytest.mark.parametrize("fused", [False, True])
def test_attention_matrix_products_count_in_the_headline_macs(fused: bool) -> None:
    """ViT written with ``q @ k^T`` and ``attn @ v``: the summary's MACs equal PyTorch's own
    FlopCounterMode / 2. With ``scaled_dot_product_attention`` the same network has the same MACs
    (FlopCounterMode counts no flops for that call on the CPU, so it is compared with the explicit form)."""
    from torch.utils.flop_counter import FlopCounterMode

    mod = importlib.import_module("tests.families.vit")
    explicit = mod.build(fused=False)
    with FlopCounterMode(display=False) as fc:
        explicit(torch.randn(mod.INPUT))
    summary = resviz.summarize(mod.build(fused=fused), input_size="x".join(map(str, mod.INPUT)))
    assert summary.total_macs == fc.get_total_flops() // 2
    rows = [lr for lr in summary.layers if lr.type in ("matmul", "scaled_dot_product_attention")]
    assert {lr.name for lr in rows} == {"blocks.0.attn", "blocks.1.attn"} and all(lr.macs > 0 for lr in rows)
    assert all(lr.block.startswith("blocks.") and lr.block.endswith(":1") for lr in rows)  # the attention residual


def test_a_fused_norm_and_activation_module_has_a_row_of_its_own() -> None:
    """timm's BatchNormAct2d computes its BatchNorm itself and calls its activation child: both rows."""
    model, mod = _model("timm_resnetv2")
    summary = resviz.summarize(model, input_size="x".join(map(str, mod.INPUT)))
    types = {lr.name: lr.type for lr in summary.layers}
    fused = [n for n, t in types.items() if t == "BatchNormAct2d"]
    assert fused and all(f"{n}.act" in types for n in fused)
    first = next(i for i, lr in enumerate(summary.layers) if lr.name == fused[0])
    assert summary.layers[first + 1].name.startswith(fused[0] + ".")  # the fused row before its children's


class _Blk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(4, 4, 3, padding=1)
        self.r = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.r(self.c(x) + x)


class _Raising(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.b = _Blk()
        self.fc = nn.Linear(4, 10)
        self.error: type[BaseException] | None = None

    def forward(self, x: Tensor) -> Tensor:
        x = self.b(self.stem(x))
        if self.error is not None:
            raise self.error("boom in forward")
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_a_forward_that_raises_leaves_nothing_behind(error: type[BaseException]) -> None:
    """The model's own error is what the trace reports; no hook or recording mode stays behind, and
    the next trace of the same model finds and measures its block again."""
    from torch.overrides import _get_current_function_mode_stack

    from resviz.measure.graph import quiet_depth

    model = _Raising()
    hooks = [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]
    assert [b.name for b in resviz.trace(model, input_size="2x3x8x8").blocks] == ["b"]
    model.error = error
    with pytest.raises((resviz.ResvizError, KeyboardInterrupt)) as err:
        resviz.trace(model, input_size="2x3x8x8")
    if error is ValueError:
        assert "boom in forward" in str(err.value)
    assert quiet_depth() == 0 and not _get_current_function_mode_stack()
    assert [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()] == hooks
    assert model.b.r.inplace
    model.error = None
    again = resviz.trace(model, input_size="2x3x8x8")
    assert [b.name for b in again.blocks] == ["b"] and again.blocks[0].grad_skip and not again.notes


def test_diagrams_of_a_vit_connect_only_nodes_they_declare() -> None:
    """A block named ``blocks.0:1`` must not read as node ``blocks.0`` port ``1`` in Graphviz."""
    import re

    from resviz.api import static_summary
    from resviz.render.diagrams import draw

    model, mod = _model("vit")
    summary = static_summary(model, "x".join(map(str, mod.INPUT)))
    trace = resviz.trace(model, inputs=torch.randn(mod.INPUT))
    for view in ("gradient-flow", "overview", "stages", "layers"):
        source = draw(summary, view=view, trace=trace).source
        declared = set(re.findall(r'^\s*"?([^"\s\[]+)"? \[', source, flags=re.M))
        for tail, head in re.findall(r'^\s*("[^"]*"|\S+) -> ("[^"]*"|\S+)', source, flags=re.M):
            for end in (tail, head):
                assert ":" not in end.strip('"') and end.strip('"') in declared, (view, end)
