"""A trace leaves the model exactly as it was, also when the forward raises."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import resviz
from resviz.errors import ResvizError
from resviz.model.resnet import ResNet, build_model

HOOK_DICTS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
)


def _snapshot(model: nn.Module) -> dict[str, object]:
    return {
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "grads": {n: p.grad for n, p in model.named_parameters()},
        "grad_values": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "training": {n: m.training for n, m in model.named_modules()},
        "hooks": {n: {d: list(getattr(m, d, {})) for d in HOOK_DICTS} for n, m in model.named_modules()},
    }


def _assert_same(model: nn.Module, before: dict[str, object]) -> None:
    after = _snapshot(model)
    for key in ("params", "buffers", "grad_values"):
        b, a = before[key], after[key]
        assert isinstance(a, dict) and isinstance(b, dict)
        assert a.keys() == b.keys()
        for n in a:
            if b[n] is None:
                assert a[n] is None, n
            else:
                assert torch.equal(a[n], b[n]), f"{key} {n} changed"
    grads_b, grads_a = before["grads"], after["grads"]
    assert isinstance(grads_a, dict) and isinstance(grads_b, dict)
    assert all(grads_a[n] is grads_b[n] for n in grads_a), "a .grad tensor was replaced"
    for key in ("requires_grad", "training", "hooks"):
        assert after[key] == before[key], key


def _prepared_model() -> ResNet:
    torch.manual_seed(0)
    model = build_model("resnet20", device="cpu")
    model.train()
    model.layer3.eval()  # mixed modes must come back as they were
    model.conv1.weight.requires_grad_(False)
    model.fc.weight.grad = torch.full_like(model.fc.weight, 0.5)  # an existing gradient to keep
    model.layer1[0].register_forward_hook(lambda m, a, o: None)  # a user's hook to keep
    return model


def test_trace_restores_everything() -> None:
    model = _prepared_model()
    before = _snapshot(model)
    tr = resviz.trace(model, input_size="4x3x32x32")
    _assert_same(model, before)
    assert tr.loss is not None and len(tr.blocks) == 9
    # The frozen weight reports no gradient; the others do.
    by_name = {p.name: p for p in tr.params}
    assert by_name["conv1.weight"].grad_norm is None
    assert by_name["fc.weight"].grad_norm and by_name["fc.weight"].grad_norm > 0


def test_batchnorm_statistics_are_restored_after_training_forward() -> None:
    model = _prepared_model()
    rm = model.bn1.running_mean.clone()
    nbt = int(model.bn1.num_batches_tracked)
    resviz.trace(model, input_size="4x3x32x32")
    assert torch.equal(model.bn1.running_mean, rm)
    assert int(model.bn1.num_batches_tracked) == nbt


class Exploding(ResNet):
    """Raises in the middle of the forward, after layer1 has updated its BatchNorm statistics."""

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer1(self.relu(self.bn1(self.conv1(x))))  # type: ignore[misc]
        raise RuntimeError("boom in the middle")


def test_state_restored_when_forward_raises() -> None:
    from resviz.zoo import get_spec

    torch.manual_seed(0)
    model = Exploding(get_spec("resnet20"))
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    before = _snapshot(model)
    with pytest.raises(ResvizError, match="boom in the middle"):
        resviz.trace(model, input_size="2x3x32x32")
    _assert_same(model, before)


def test_global_rng_is_untouched() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    resviz.trace("resnet20", input_size="2x3x32x32", seed=7)
    assert torch.equal(torch.get_rng_state(), state)


def test_same_seed_same_trace_and_different_seed_differs() -> None:
    a = resviz.trace("resnet20", input_size="2x3x32x32", seed=3)
    b = resviz.trace("resnet20", input_size="2x3x32x32", seed=3)
    c = resviz.trace("resnet20", input_size="2x3x32x32", seed=4)
    assert a == b
    assert a.loss != c.loss


class _Counting(nn.Module):
    """A residual block that counts its calls in a buffer it assigns anew each forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        self.calls = self.calls + 1
        return (x + self.bn(self.conv(x))).mean((2, 3))


class _Transient(nn.Module):
    """A forward that deletes a non-persistent buffer, registers another, and adds a submodule."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.register_buffer("cache", torch.zeros(4), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "cache"):
            del self.cache
        self.register_buffer("scratch", torch.ones(1), persistent=False)
        self.extra = nn.Identity()
        return self.conv(x).mean((2, 3))


def test_buffers_and_submodules_a_forward_adds_or_deletes_are_put_back() -> None:
    model = _Transient()
    keys = list(model.state_dict())
    resviz.trace(model, input_size=(2, 3, 4, 4))
    assert list(model.state_dict()) == keys and model._non_persistent_buffers_set == {"cache"}
    assert not hasattr(model, "scratch") and not hasattr(model, "extra") and torch.equal(model.cache, torch.zeros(4))


@pytest.mark.parametrize("how", ["trace", "study"])
def test_a_buffer_the_forward_assigns_anew_is_put_back(how: str) -> None:
    """The buffer object the module held (not only its values) is the one it holds after a trace or a
    study, although the forward replaced it on every call."""
    model = _Counting()
    calls, mean = model.calls, model.bn.running_mean
    before = _snapshot(model)
    if how == "trace":
        resviz.trace(model, input_size=(2, 3, 8, 8))
    else:
        resviz.study("signal", model, input_size="2x3x8x8")
    assert model.calls is calls and model.bn.running_mean is mean and float(model.calls) == 0.0
    _assert_same(model, before)
