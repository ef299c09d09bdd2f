"""Put resviz's counts beside fvcore's, torchinfo's and torch's ``FlopCounterMode``, per layer type.

The four counters disagree for documented reasons; each row says which, with the measured ratio:

* fvcore (``FlopCountAnalysis``) counts one multiply-accumulate as one "flop", adds batch norm and
  adaptive average pooling to its total, and skips ReLU, max-pooling and additions.
* torchinfo (``summary().total_mult_adds``) counts only modules with parameters: convolutions and
  linear layers as MACs plus the linear bias, and batch norm as its parameter count.
* ``torch.utils.flop_counter.FlopCounterMode`` reports FLOPs = 2 x MACs of convolutions and matrix
  products and skips everything else.

fvcore and torchinfo run a real forward pass, so this module builds the model on the CPU at the
requested input size; it is the only part of the static analysis that computes anything. Both come
with the ``reconcile`` extra (``pip install 'resviz[reconcile]'``); without them the reconciliation
is a one-line error.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from typing import Any

import torch
from torch import nn

from resviz.extras import require
from resviz.measure.ownership import Use, exclusive
from resviz.records import ReconcileRow, Reconciliation, Summary
from resviz.studies.environment import package_version

#: What the one-line error says needs the ``reconcile`` extra.
FEATURE = "the counter reconciliation"


def check_counters() -> None:
    """Refuse in one line, before any model is built, when the ``reconcile`` extra is missing."""
    for module in ("fvcore.nn", "torchinfo"):
        require(module, "reconcile", FEATURE)


def _fvcore_by_module(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    # Imported here: every surface imports the api, and only this pass needs fvcore (bench/RESULTS.md, imports).
    analysis = require("fvcore.nn", "reconcile", FEATURE).FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {k: int(v) for k, v in analysis.by_module().items()}


def _torchinfo_by_module(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    names = {id(m): n for n, m in model.named_modules()}
    stats = require("torchinfo", "reconcile", FEATURE).summary(model, input_data=x, verbose=0, device="cpu")
    out: dict[str, int] = {}
    for info in stats.summary_list:
        name = names.get(id(info.module))
        if name is not None and not any(True for _ in info.module.children()):
            out[name] = out.get(name, 0) + int(info.macs)
    return out


def _flop_counter_by_type(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    # Imported here: torch's flop counter loads its decompositions, slow for every `import resviz.api`.
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    by_type: dict[str, int] = defaultdict(int)
    for op, flops in counter.get_flop_counts()["Global"].items():
        name = str(op)
        kind = "Conv2d" if "convolution" in name else "Linear" if ("mm" in name) else name
        by_type[kind] += int(flops)
    return dict(by_type)


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3g}" if b else "-"


def _explain(rm: int, re: int, fv: int, ti: int, fc: int, params: int, out_el: int) -> str:
    """One sentence on why the counters differ for this layer type, with measured ratios."""
    parts: list[str] = []
    if rm:
        if fv == rm:
            parts.append("fvcore equal (1 MAC = 1 flop)")
        if ti == rm:
            parts.append("torchinfo equal")
        elif ti - rm:
            parts.append(f"torchinfo adds {ti - rm:,} for biases")
        if fc == 2 * rm:
            parts.append("FlopCounterMode = 2 x MACs (multiply and add counted apart)")
        return "; ".join(parts) or "counters differ"
    if fv and fv == re:
        parts.append("fvcore adds it to its total (the same count as resviz's elementwise column)")
    elif fv:
        parts.append(
            f"fvcore adds {_ratio(fv, out_el)} per output element to its total; resviz counts "
            f"{_ratio(re, out_el)} in its elementwise column, outside the headline"
        )
    else:
        parts.append("fvcore skips it")
    if ti:
        parts.append(f"torchinfo counts its {ti:,} parameters" if ti == params else f"torchinfo {ti:,}")
    else:
        parts.append("torchinfo skips it (no parameters)")
    parts.append("FlopCounterMode skips it" if not fc else f"FlopCounterMode {fc:,}")
    return "; ".join(parts)


def reconcile_module(model: nn.Module, summary: Summary) -> Reconciliation:
    """Reconcile the four counters for ``model`` (a real CPU model) at ``summary.input_shape``."""
    check_counters()
    x = torch.zeros(summary.input_shape)
    with exclusive(model, Use.RECONCILE, summary.model):  # a trace meanwhile would record these passes
        was_training = model.training
        model.eval()  # fvcore's batch-norm count depends on the mode; eval is the inference form
        try:
            fv = _fvcore_by_module(model, x)
            ti = _torchinfo_by_module(model, x)
            fc_types = _flop_counter_by_type(model, x)
        finally:
            model.train(was_training)
    rows: list[ReconcileRow] = []
    types: dict[str, list[Any]] = defaultdict(list)
    for lr in summary.layers:
        types[lr.type].append(lr)
    for t, recs in types.items():
        rm = sum(r.macs for r in recs)
        re = sum(r.elementwise for r in recs)
        fvc = sum(fv.get(r.name, 0) for r in recs)
        tic = sum(ti.get(r.name, 0) for r in recs)
        fcc = fc_types.get(t, 0)
        params = sum(r.params for r in recs)
        out_el = sum(math.prod(r.output_shape) for r in recs)
        rows.append(ReconcileRow(t, len(recs), rm, re, fvc, tic, fcc, _explain(rm, re, fvc, tic, fcc, params, out_el)))
    totals = {
        "resviz_macs": summary.total_macs,
        "resviz_elementwise": summary.total_elementwise,
        "fvcore": sum(r.fvcore for r in rows),
        "torchinfo": sum(r.torchinfo for r in rows),
        "flop_counter": sum(fc_types.values()),
    }
    return Reconciliation(summary.model, summary.input_shape, tuple(rows), totals, _versions())


def _versions() -> dict[str, str]:
    counters = {p: package_version(p, "not installed") for p in ("fvcore", "torchinfo")}
    return {"torch": str(torch.__version__), **counters}
