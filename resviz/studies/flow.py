"""The numbers of a gradient-flow comparison, computed from a model's trace at initialisation.

What is measured, and where the idea comes from:

* **headline**: gradient norm at the first block's input divided by that at the last block's input.
  He et al. 2015 (arXiv:1512.03385, Sec. 4.1) argue that the degradation of deep plain nets is an
  optimisation difficulty; He et al. 2016 (arXiv:1603.05027, Eqs. 4-5) show that with identity
  shortcuts dL/dx_l = dL/dx_L (1 + d/dx_l sum F), so the gradient at a shallow unit keeps a direct
  copy of the deep one. Without shortcuts the gradient is a product of per-layer Jacobians, which in
  batch-normalised plain nets grows with depth going backward (Yang et al. 2019, arXiv:1902.08129).
* **per block**: norms of the gradient arriving at the block input through the main path and through
  the shortcut, and their ratio main/skip (as the gradient-flow diagram labels it; none for a plain
  block). Below 1 the shortcut carries more of the gradient than the residual branch.
* **activation std against depth**: responses of each 3x3 layer after its BatchNorm, before the
  nonlinearity or addition, as in He et al. 2015, Fig. 7. Where no BN directly follows a 3x3 layer
  (pre-activation blocks) the convolution's own output is used. At initialisation a train-mode BN
  output has std 1 by construction; the paper's curves are of trained nets, so after training the
  same probe batch is traced again (``act_std_trained``), where the BN scales have moved.
* **per stage**: the same numbers summarised over the blocks of each stage (Table 1 names).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from torch import nn

from resviz.records import BlockFlow, LayerStd, StageFlow, Summary, Trace
from resviz.studies.candidates import Candidate


def _ratio(num: float | None, den: float | None) -> float:
    if num is None or den is None:
        return math.nan
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def block_flows(trace: Trace) -> tuple[BlockFlow, ...]:
    return tuple(
        BlockFlow(
            b.name, b.stage, i + 1, b.shortcut, _f(b.grad_main), _f(b.grad_skip), _f(b.grad_total),
            b.grad_ratio, b.main_rms, b.skip_rms,
        )
        for i, b in enumerate(trace.blocks)
    )


def _f(v: float | None) -> float:
    return math.nan if v is None else float(v)


def response_stds(trace: Trace, model: nn.Module) -> tuple[LayerStd, ...]:
    """He et al. 2015, Fig. 7: std of each 3x3 layer's response, after BN where BN follows it."""
    modules = dict(model.named_modules())
    layers = trace.layers
    points: list[LayerStd] = []
    for i, layer in enumerate(layers):
        mod = modules.get(layer.name)
        if not isinstance(mod, nn.Conv2d) or tuple(mod.kernel_size) != (3, 3):
            continue
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        chosen = layer
        if nxt is not None and "norm" in nxt.type.lower() and nxt.block == layer.block:
            chosen = nxt
        points.append(LayerStd(len(points) + 1, chosen.name, layer.stage, chosen.std))
    return tuple(points)


def stage_flows(blocks: Sequence[BlockFlow], stds: Sequence[LayerStd]) -> tuple[StageFlow, ...]:
    out: list[StageFlow] = []
    for stage in dict.fromkeys(b.stage for b in blocks):
        bs = [b for b in blocks if b.stage == stage]
        ratios = [b.ratio for b in bs if b.ratio is not None and math.isfinite(b.ratio)]
        act = [s.std for s in stds if s.stage == stage]
        out.append(StageFlow(
            stage, len(bs), bs[0].grad_total, bs[-1].grad_total,
            _ratio(bs[0].grad_total, bs[-1].grad_total),
            statistics.fmean(ratios) if ratios else None,
            statistics.fmean(act) if act else math.nan,
        ))
    return tuple(out)


def init_result(cand: Candidate, summ: Summary, model: nn.Module, tr: Trace) -> dict[str, Any]:
    """The fields of a :class:`~resviz.records.ModelResult` known at initialisation."""
    blocks = block_flows(tr)
    stds = response_stds(tr, model)
    first = blocks[0].grad_total if blocks else math.nan
    last = blocks[-1].grad_total if blocks else math.nan
    return {
        "name": cand.name, "has_skips": cand.has_skips, "depth": cand.depth, "params": summ.total_params,
        "macs": summ.total_macs, "blocks_count": len(blocks), "loss_init": _f(tr.loss),
        "grad_first": first, "grad_last": last, "headline": _ratio(first, last),
        "blocks": blocks, "act_std": stds, "stages": stage_flows(blocks, stds),
        "spec": dict(cand.spec),
        "trace": tr, "summary": summ,
    }
