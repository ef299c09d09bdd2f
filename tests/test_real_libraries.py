"""Real torchvision and timm models, built by name without weights, where those libraries import.

From the registry, torchvision (and timm, which needs it) is built against the CUDA torch and does not
import with a CPU-only torch: there each test here is skipped with the import error as its reason, so the
run says plainly that these real-model checks did not run (the test-local families in tests/families stand
in for them). Where they import, every real block must be found and split exactly, as in
tests/test_trace_families.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import resviz
from resviz.api.factories import load_factory
from resviz.errors import ResvizError
from resviz.measure.structure import discover
from resviz.measure.tracer import branch_gradients
from tests.test_trace_families import _block_gradients, _close

#: Real model, its input, the block classes it is made of, residual additions per block, whether a ReLU
#: follows the addition (post-activation).
CASES = [
    ("torchvision:resnet18", (2, 3, 64, 64), ("BasicBlock",), 1, True),
    ("torchvision:resnet50", (2, 3, 64, 64), ("Bottleneck",), 1, True),
    ("timm:resnet18", (2, 3, 64, 64), ("BasicBlock",), 1, True),
    ("timm:convnext_atto", (2, 3, 64, 64), ("ConvNeXtBlock",), 1, False),
    ("timm:vit_tiny_patch16_224", (2, 3, 224, 224), ("Block",), 2, False),
]


def _built(target: str) -> nn.Module:
    try:
        torch.manual_seed(0)
        return load_factory(target)
    except ResvizError as exc:
        pytest.skip(f"did not run: {exc}")


@pytest.mark.parametrize(("target", "shape", "classes", "per_block", "post_act"), CASES,
                         ids=[c[0] for c in CASES])
def test_real_blocks_are_found_and_split_exactly(
    target: str, shape: tuple[int, ...], classes: tuple[str, ...], per_block: int, post_act: bool,
) -> None:
    model = _built(target)
    real = [n for n, m in model.named_modules() if type(m).__name__ in classes]
    sites = discover(model, shape).sites
    assert [s.module for s in sites] == [n for n in real for _ in range(per_block)]
    got, handles = _block_gradients(model, set(real))
    vectors = branch_gradients(model, torch.randn(shape))
    for h in handles:
        h.remove()
    for s in sites:
        v = vectors[s.name]
        _close(v["main"] + v["skip"], v["total"])
        if per_block == 1 and s.shortcut == "identity":
            _close(v["total"], got[f"{s.module}/in"])
            relu = (got[f"{s.module}/out"] > 0).float() if post_act else 1.0
            _close(v["skip"], relu * got[f"{s.module}/gout"])


@pytest.mark.parametrize(("target", "zero_last"), [
    ("torchvision:resnet18", False), ("torchvision:resnet50", False),
    ("timm:resnet18", True),  # timm's zero_init_last: each block's last BatchNorm scale starts at 0
])
def test_real_resnets_trace_and_stay_intact(target: str, zero_last: bool) -> None:
    """Every block is measured and the model is left as it was. timm initialises the last BatchNorm
    of every block to zero (Goyal et al. 2017, arXiv:1706.02677, Sec. 5.1), so at initialisation its
    main branches add exactly nothing and pass no gradient: the trace must say so, not hide it."""
    model = _built(target)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    tr = resviz.trace(model, input_size=(2, 3, 64, 64))
    assert tr.blocks and all(b.grad_skip and b.skip_rms > 0 for b in tr.blocks)
    if zero_last:
        assert all(b.main_rms == 0.0 and b.grad_main == 0.0 for b in tr.blocks)
    else:
        assert all(b.main_rms > 0 and b.grad_main for b in tr.blocks)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(("target", "params", "blocks"), [
    ("torchvision:resnet50", 25_557_032, 16),
    ("timm:convnext_atto", 3_695_520, 12),
    ("timm:vit_tiny_patch16_224", 5_717_416, 24),
])
def test_real_library_models_summarise_by_name(target: str, params: int, blocks: int) -> None:
    """Summaries of library models by name are counted on the meta device (factory_summary) and match the
    libraries' own parameter counts."""
    _built(target)  # skips where the library does not import
    s = resviz.summarize(target, input_size="1x3x224x224")
    assert s.total_params == params and len(s.blocks) == blocks
