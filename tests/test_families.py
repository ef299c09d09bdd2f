"""The test-local block families build, train one step, and their ground truth matches what forward does.

The truth of each family (``tests/families``) is checked here independently of resviz, from one recorded forward:
forward pre/post hooks on every module give the call order and each call's input and output, and a
``TorchFunctionMode`` records every addition with the innermost module running when it happens. Against that:
every ``Residual.block`` performs exactly its residual additions in its own forward, ``main_last`` is the last
core module of the main branch before its addition, the shortcut operand is the input (identity) or the
output of the named shortcut module of the named kind, the modifiers are the ones on that branch, the stages
follow the block outputs' resolutions, and every other addition in the model is listed in ``NOT_RESIDUAL``.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from tests.families import FAMILIES, MODIFIERS, SHORTCUTS, Residual, split_not_residual
from tests.families.common import MODIFIER_TYPES, DropPath
from tests.families.tv_resnet import build as build_tv
from tests.fidelity import fill

ADDS = {"add", "add_", "__add__", "__iadd__", "__radd__"}
MODULES: dict[str, ModuleType] = {f: importlib.import_module(f"tests.families.{f}") for f in FAMILIES}
CASES = [(f, v) for f, m in MODULES.items() for v in m.VARIANTS]


@dataclass
class Call:
    name: str
    start: int
    end: int = -1
    input: Any = None
    output: Any = None


@dataclass
class Add:
    at: int
    module: str
    operands: tuple[Any, ...]
    result: Any


@dataclass
class Recording:
    model: nn.Module
    output: torch.Tensor
    x: torch.Tensor
    calls: dict[str, list[Call]] = field(default_factory=dict)
    adds: list[Add] = field(default_factory=list)

    def only_call(self, name: str) -> Call:
        calls = self.calls.get(name, [])
        assert len(calls) == 1, f"{name} is called {len(calls)} times"
        return calls[0]

    def adds_in(self, name: str) -> list[Add]:
        return [a for a in self.adds if a.module == name]


class _AddRecorder(TorchFunctionMode):
    def __init__(self, clock: list[int], stack: list[str], adds: list[Add]) -> None:
        super().__init__()
        self.clock, self.stack, self.adds = clock, stack, adds

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") in ADDS:
            self.clock[0] += 1
            self.adds.append(Add(self.clock[0], self.stack[-1] if self.stack else "", tuple(args), result))
        return result


def _first_tensor(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return value[0] if value else None
    return value


def record(model: nn.Module, x: torch.Tensor) -> Recording:
    """One forward with every call and addition recorded; hooks removed afterwards."""
    clock, stack, calls, adds = [0], [], {}, []  # type: ignore[var-annotated]
    open_calls: list[Call] = []

    def pre(name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            clock[0] += 1
            call = Call(name, clock[0], input=_first_tensor(args))
            calls.setdefault(name, []).append(call)
            open_calls.append(call)
            stack.append(name)
        return hook

    def post(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        clock[0] += 1
        call = open_calls.pop()
        call.end, call.output = clock[0], output
        stack.pop()

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(pre(name)))
        handles.append(module.register_forward_hook(post))
    try:
        with _AddRecorder(clock, stack, adds):
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    logits = out if isinstance(out, torch.Tensor) else out.logits
    return Recording(model, logits, x, calls, adds)


@functools.cache
def recorded(family: str, variant: str) -> Recording:
    module = MODULES[family]
    torch.manual_seed(0)
    model = module.build(**module.VARIANTS[variant])
    x = torch.randn(*module.INPUT, requires_grad=True)
    return record(model, x)


def truth(family: str, variant: str) -> list[Residual]:
    module = MODULES[family]
    return list(module.truth(**module.VARIANTS[variant]))


def _within(name: str, parent: str) -> bool:
    return name == parent or name.startswith(parent + ".")


def _passes_through(module: nn.Module) -> bool:
    """Modules that hand their input on unchanged here (drop rates are zero, drop-path only in training)."""
    if isinstance(module, nn.Identity) or (isinstance(module, nn.Sequential) and len(module) == 0):
        return True
    return isinstance(module, nn.Dropout) and module.p == 0.0


def _modifier_kinds(module: nn.Module) -> set[str]:
    return {kind for kind, types in MODIFIER_TYPES.items() if isinstance(module, types)}


def _span(rec: Recording, r: Residual) -> tuple[int, Add]:
    """(time the main branch of ``r`` starts, its addition)."""
    adds = rec.adds_in(r.block)
    lower = adds[r.index - 2].at if r.index > 1 else rec.only_call(r.block).start
    return lower, adds[r.index - 1]


# --- registry -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_family_module_exposes_build_truth_and_negatives(family: str) -> None:
    module = MODULES[family]
    assert callable(module.build) and isinstance(module.INPUT, tuple)
    assert next(iter(module.VARIANTS.values())) == {}
    assert module.truth() == module.TRUTH
    assert all(isinstance(r, Residual) for r in module.TRUTH)
    assert all(isinstance(s, str) and ": " in s for s in module.NOT_RESIDUAL)
    if family.startswith("neg_"):
        assert module.TRUTH == [] and module.NOT_RESIDUAL
    else:
        assert module.TRUTH
        assert len({(r.block, r.index) for r in module.TRUTH}) == len(module.TRUTH)


def test_the_families_cover_every_shortcut_modifier_stage_and_double_block() -> None:
    every = [r for f, v in CASES for r in truth(f, v)]
    assert {r.shortcut for r in every} == set(SHORTCUTS)
    assert {m for r in every for m in r.modifiers} == set(MODIFIERS)
    assert any(r.stage > 0 for r in every) and any(r.index == 2 for r in every)


def test_residual_rejects_unknown_kinds_and_unsorted_modifiers() -> None:
    with pytest.raises(ValueError):
        Residual("b", 1, "dense", "b.bn")
    with pytest.raises(ValueError):
        Residual("b", 1, "identity", "b.bn", ("se", "drop-path"))
    with pytest.raises(ValueError):
        Residual("b", 1, "projection", "b.bn")
    with pytest.raises(ValueError):
        Residual("b", 0, "identity", "b.bn")


# --- every family trains ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("family", "variant"), CASES)
def test_forward_backward_is_finite(family: str, variant: str) -> None:
    rec = recorded(family, variant)
    assert torch.isfinite(rec.output).all()
    rec.output.square().mean().backward()
    assert rec.x.grad is not None and torch.isfinite(rec.x.grad).all() and rec.x.grad.abs().sum() > 0
    grads = [p.grad for p in rec.model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


# --- the truth, checked against the recorded forward --------------------------------------------------------


@pytest.mark.parametrize(("family", "variant"), CASES)
def test_blocks_perform_exactly_their_residual_additions(family: str, variant: str) -> None:
    rec, rs = recorded(family, variant), truth(family, variant)
    names = dict(rec.model.named_modules())
    for block in {r.block for r in rs}:
        assert block in names, block
        rec.only_call(block)
        indices = sorted(r.index for r in rs if r.block == block)
        assert indices == list(range(1, len(rec.adds_in(block)) + 1)), block


@pytest.mark.parametrize(("family", "variant"), CASES)
def test_every_other_addition_is_listed_as_not_residual(family: str, variant: str) -> None:
    rec, rs = recorded(family, variant), truth(family, variant)
    module = MODULES[family]
    listed = {split_not_residual(s)[0] for s in module.NOT_RESIDUAL}
    names = dict(rec.model.named_modules())
    for name in listed:
        assert name in names and rec.adds_in(name), f"{name!r} performs no addition"
        assert name not in {r.block for r in rs}
    for add in rec.adds:
        counter = isinstance(names[add.module], nn.modules.batchnorm._BatchNorm) and any(
            a is names[add.module].num_batches_tracked for a in add.operands)
        assert counter or add.module in listed or add.module in {r.block for r in rs}, add.module


@pytest.mark.parametrize(("family", "variant"), CASES)
def test_main_last_is_the_last_core_module_before_the_addition(family: str, variant: str) -> None:
    rec = recorded(family, variant)
    names = dict(rec.model.named_modules())
    for r in truth(family, variant):
        lower, add = _span(rec, r)
        assert _within(r.main_last, r.block) and r.main_last != r.block
        assert not _passes_through(names[r.main_last]) and not _modifier_kinds(names[r.main_last]), r
        last = [c for c in rec.calls[r.main_last] if lower < c.end < add.at]
        assert len(last) == 1, r
        modifiers = [n for n, m in names.items() if _within(n, r.block) and _modifier_kinds(m)]
        for calls in rec.calls.values():
            for c in calls:
                if not last[0].end < c.end < add.at:
                    continue
                allowed = (
                    _within(r.main_last, c.name)
                    or _passes_through(names[c.name])
                    or (r.shortcut_module is not None and _within(c.name, r.shortcut_module))
                    or any(_within(c.name, m) for m in modifiers)
                )
                assert allowed, f"{c.name} runs after {r.main_last} before the addition of {r.block}"


@pytest.mark.parametrize(("family", "variant"), CASES)
def test_modifiers_are_the_ones_on_the_main_branch(family: str, variant: str) -> None:
    rec = recorded(family, variant)
    names = dict(rec.model.named_modules())
    for r in truth(family, variant):
        lower, add = _span(rec, r)
        seen = set()
        for name, module in names.items():
            if _within(name, r.block) and any(lower < c.end < add.at for c in rec.calls.get(name, [])):
                seen |= _modifier_kinds(module)
        if isinstance(getattr(names[r.block], "gamma", None), nn.Parameter):
            seen.add("layer-scale")  # ConvNeXt multiplies its own gamma in, no module
        assert tuple(sorted(seen)) == r.modifiers, r


def _stream(rec: Recording, r: Residual) -> Any:
    """The tensor the block adds its branch to: its input, or the result of its previous addition."""
    return rec.adds_in(r.block)[r.index - 2].result if r.index > 1 else rec.only_call(r.block).input


@pytest.mark.parametrize(("family", "variant"), CASES)
def test_shortcuts_are_what_truth_says(family: str, variant: str) -> None:
    rec = recorded(family, variant)
    names = dict(rec.model.named_modules())
    for r in truth(family, variant):
        lower, add = _span(rec, r)
        x = _stream(rec, r)
        if r.shortcut == "identity":
            assert any(a is x for a in add.operands), r
            if r.shortcut_module is not None:
                assert _passes_through(names[r.shortcut_module])
                assert rec.only_call(r.shortcut_module).output is x
            continue
        assert r.shortcut_module is not None and _within(r.shortcut_module, r.block)
        call = rec.only_call(r.shortcut_module)
        assert lower < call.end < add.at and any(a is call.output for a in add.operands), r
        pre_activated = [c.output for n, cs in rec.calls.items() for c in cs
                         if n.startswith(r.block + ".") and c.input is x]
        assert call.input is x or any(call.input is p for p in pre_activated), r
        _check_shortcut_kind(rec, r, names[r.shortcut_module], call)


def _check_shortcut_kind(rec: Recording, r: Residual, shortcut: nn.Module, call: Call) -> None:
    convs = [m for m in shortcut.modules() if isinstance(m, nn.Conv2d)]
    pools = [n for n, m in shortcut.named_modules() if isinstance(m, nn.AvgPool2d)]
    if r.shortcut == "zero-pad":
        inp, out = call.input, call.output
        assert not list(shortcut.parameters()) and out.shape[1] > inp.shape[1]
        stride = inp.shape[-1] // out.shape[-1]
        pad = (out.shape[1] - inp.shape[1]) // 2
        assert torch.equal(out[:, pad:pad + inp.shape[1]], inp[:, :, ::stride, ::stride])
        assert not out[:, :pad].any() and not out[:, pad + inp.shape[1]:].any()
    elif r.shortcut == "projection":
        assert len(convs) == 1 and convs[0].kernel_size == (1, 1) and not pools, r
    else:
        assert r.shortcut == "pooled-projection" and len(pools) == 1 and len(convs) == 1, r
        pool = rec.only_call(f"{r.shortcut_module}.{pools[0]}")
        conv = rec.only_call(next(f"{r.shortcut_module}.{n}" for n, m in shortcut.named_modules() if m is convs[0]))
        assert pool.end < conv.start and convs[0].kernel_size == (1, 1) and conv.input is pool.output
        assert call.input.shape[-1] == 2 * conv.output.shape[-1]


@pytest.mark.parametrize(("family", "variant"), CASES)
def test_stages_follow_the_block_output_resolution(family: str, variant: str) -> None:
    rec, rs = recorded(family, variant), truth(family, variant)
    blocks = sorted({r.block for r in rs}, key=lambda b: rec.only_call(b).start)
    stage, seen, expected = -1, None, {}
    for b in blocks:
        out = _first_tensor(rec.only_call(b).output)
        size = tuple(out.shape[2:]) if out.dim() == 4 else tuple(out.shape[1:2])
        if size != seen:
            stage, seen = stage + 1, size
        expected[b] = stage
    assert all(r.stage == expected[r.block] for r in rs)


# --- fidelity of the torchvision family against torchvision's own numbers -----------------------------------


TV_SIZES = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3))}


@pytest.mark.parametrize("name", sorted(TV_SIZES))
def test_torchvision_family_has_torchvision_state_dict(name: str, tv_reference: dict[str, Any]) -> None:
    block, layers = TV_SIZES[name]
    with torch.device("meta"):
        model = build_tv(block, layers, (64, 128, 256, 512), 1000)
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == tv_reference[name]["state_dict"]


def test_torchvision_family_computes_torchvision_logits(fidelity: dict[str, Any]) -> None:
    n, c, h, w = fidelity["input_shape"]
    x = (0.5 * torch.sin(0.013 * torch.arange(n * c * h * w, dtype=torch.float64))).reshape(n, c, h, w).float()
    model = build_tv("basic", (2, 2, 2, 2), (64, 128, 256, 512), 1000).eval()
    fill(model)
    with torch.no_grad():
        y = model(x)
    case = fidelity["cases"]["resnet18"]
    assert torch.allclose(y[:, :10], torch.tensor(case["logits_first10"]), atol=2e-5)
    assert torch.allclose(y.norm(dim=1), torch.tensor(case["logits_l2"]), atol=2e-4)


def test_drop_path_drops_whole_samples_in_training_only() -> None:
    torch.manual_seed(0)
    drop, x = DropPath(0.5), torch.ones(64, 3, 2, 2)
    y = drop(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all() and 0 < (per_sample[:, 0] == 0).sum() < 64
    assert drop.eval()(x) is x
