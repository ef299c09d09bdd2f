"""``resviz.monitor`` numbers against an unhooked copy of the model, step by step.

The existing monitor test checks the block gradients only for being non-zero. Here every
monitored step is replayed first on a deep copy (same weights, same batch, train-mode BatchNorm),
where autograd gives, for each identity block y = F(x) + x (He et al. 2015, Eq. 1), dL/dx and
dL/d(F(x) + x): the skip path's share of dL/dx is the latter, the main path's the difference.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import resviz


def _replay(model: nn.Module, x: Tensor, y: Tensor, names: list[str]) -> dict[str, dict[str, float]]:
    """Per identity block of a post-activation basic net: norms of dL/dx, of its skip and main
    shares, and the RMS of the main addend (bn2's output) and of the skip addend (x)."""
    net = copy.deepcopy(model)
    mods = dict(net.named_modules())
    rec: dict[str, dict[str, Tensor]] = {n: {} for n in names}
    handles = []
    for n in names:
        r = rec[n]

        def pre(_m: nn.Module, args: tuple[Tensor, ...], r: dict[str, Tensor] = r) -> None:
            args[0].retain_grad()
            r["x"] = args[0]

        def relu_pre(_m: nn.Module, args: tuple[Tensor, ...], r: dict[str, Tensor] = r) -> None:
            args[0].retain_grad()
            r["sum"] = args[0]

        def bn2(_m: nn.Module, _a: tuple[Tensor, ...], out: Tensor, r: dict[str, Tensor] = r) -> None:
            r["main_out"] = out.detach().clone()

        handles += [mods[n].register_forward_pre_hook(pre), mods[n].relu2.register_forward_pre_hook(relu_pre),
                    mods[n].bn2.register_forward_hook(bn2)]
    F.cross_entropy(net(x), y).backward()
    for h in handles:
        h.remove()
    out: dict[str, dict[str, float]] = {}
    for n, r in rec.items():
        dx, ds = r["x"].grad, r["sum"].grad
        out[n] = {
            "total": float(dx.norm()), "skip": float(ds.norm()), "main": float((dx - ds).norm()),  # type: ignore[union-attr,operator]
            "main_rms": float(r["main_out"].square().mean().sqrt()),
            "skip_rms": float(r["x"].detach().square().mean().sqrt()),
        }
    return out


def test_monitored_block_numbers_equal_an_unhooked_replay() -> None:
    torch.manual_seed(0)
    spec = resviz.ResNetSpec(name="t_mon", block="basic", layers=(2, 2), widths=(8, 16), stem="cifar",
                             stem_width=8, num_classes=10)
    model = resviz.build_model(spec, device="cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs = [torch.randn(4, 3, 8, 8) for _ in range(3)]
    ys = [torch.randint(0, 10, (4,)) for _ in range(3)]
    identity = ["layer1.0", "layer1.1", "layer2.1"]
    expected: dict[int, dict[str, dict[str, float]]] = {}
    weights: dict[int, dict[str, float]] = {}
    with resviz.monitor(model, every=1) as mon:
        for step, (x, y) in enumerate(zip(xs, ys, strict=True)):
            expected[step] = _replay(model, x, y, identity)
            weights[step] = {n: float(p.detach().norm()) for n, p in model.named_parameters()}
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            mon.log_loss(loss)
    assert mon.steps == (0, 1, 2)
    for snap in mon.series.snapshots:
        blocks = {b.name: b for b in snap.blocks}
        assert [blocks[n].shortcut for n in identity] == ["identity"] * 3
        for n in identity:
            b, want = blocks[n], expected[snap.step][n]
            assert b.grad_total == pytest.approx(want["total"], rel=1e-4), (snap.step, n)
            assert b.grad_skip == pytest.approx(want["skip"], rel=1e-4), (snap.step, n)
            assert b.grad_main == pytest.approx(want["main"], rel=1e-4), (snap.step, n)
            assert b.main_rms == pytest.approx(want["main_rms"], rel=1e-4), (snap.step, n)
            assert b.skip_rms == pytest.approx(want["skip_rms"], rel=1e-4), (snap.step, n)
        for p in snap.params:
            assert p.weight_norm == pytest.approx(weights[snap.step][p.name], rel=1e-5), p.name
