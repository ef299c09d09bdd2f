"""The memory pre-flight's estimate against the measured peak of the pass it estimates.

Each case runs in a fresh process (``python bench/memory.py --one NAME SHAPE``), so no earlier pass
has left memory in the allocator: the estimate is computed before anything is built, the peak RSS
is reset (``/proc/self/clear_refs``), the model is built and traced on the CPU, and the peak
(``VmHWM``) less the RSS before the build is the measured need, weights included, as the estimate
counts them. For reference the same process then counts the tensors autograd saves for the backward
pass (a meta forward under ``saved_tensors_hooks``, unique storages, parameters left out), the other
candidate for the activation part. One comparison (two models trained two steps) covers the
gradients, SGD momentum and batches of :func:`resviz.measure.memory.compare_need`.

Goal: every estimate within 30 % of its measured peak (ratio 0.7-1.3).

    python bench/memory.py            # all cases, about 2 minutes on 2 cores, under 3 GiB
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

CASES = [
    ("resnet20", "64x3x32x32"), ("resnet20", "256x3x32x32"), ("plain20", "256x3x32x32"),
    ("resnet56", "256x3x32x32"), ("resnet18", "8x3x224x224"), ("resnet18", "32x3x224x224"),
    ("resnet50", "4x3x224x224"), ("resnet50", "12x3x224x224"),
    ("preact_resnet18", "16x3x224x224"), ("preact_resnet164", "64x3x32x32"),
]
COMPARES = [  # models, steps, batch shape
    ("resnet20,plain20", 2, "128x3x32x32"), ("resnet20,plain20,resnet32,plain32", 1, "64x3x32x32"),
]


def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    m = re.search(rf"{key}:\s+(\d+) kB", text)
    return int(m.group(1)) * 1024 if m else 0


def _reset_peak() -> int:
    """Reset the peak RSS to the current RSS and return it."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _saved_bytes(name: str, shape: tuple[int, ...]) -> int:
    """Bytes autograd saves for the backward pass (meta forward, unique storages, no parameters)."""
    import torch
    import torch.nn.functional as F

    from resviz.api import build_model, get_spec

    model = build_model(get_spec(name), device="meta").train()
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    seen: dict[int, tuple[int, torch.Tensor]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        seen.setdefault(s._cdata, (s.nbytes(), t))  # keep t alive: no storage address is reused
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(torch.empty(shape, device="meta"))
        F.cross_entropy(out, torch.zeros(shape[0], dtype=torch.long, device="meta"))
    return sum(n for k, (n, _) in seen.items() if k not in params)


def one(name: str, size: str) -> dict[str, object]:
    """Estimate, then measure, one trace in this (fresh) process."""
    import torch

    from resviz.api import parse_input_size, resolve_model, trace_memory
    from resviz.measure.tracer import trace

    torch.set_num_threads(2)
    shape = parse_input_size(size)
    need = trace_memory(name, shape)
    before = _reset_peak()
    found = resolve_model(name, "cpu", 0)
    trace(found.model, input_shape=shape)
    peak = _status("VmHWM") - before
    return {"case": f"trace {name} {size}", "estimate": need.total, "activations": need.activations,
            "weights": need.weights, "measured": peak, "saved": _saved_bytes(name, shape)}


def one_compare(names: str, steps: int, size: str) -> dict[str, object]:
    """Estimate, then measure, one comparison with training steps."""
    import torch

    from resviz.api import analyze_spec, compare, compare_need, get_spec, parse_input_size
    from resviz.studies.data import data_bytes

    torch.set_num_threads(2)
    models = names.split(",")
    shape = parse_input_size(size)
    data = data_bytes("synthetic", steps + 1, shape[0], shape[1:])
    need = compare_need([analyze_spec(get_spec(m), (1, *shape[1:])) for m in models], shape[0], steps, data)
    before = _reset_peak()
    compare(list(models), steps=steps, batch=shape[0], input_size=shape[1:], device="cpu")
    peak = _status("VmHWM") - before
    return {"case": f"compare {' '.join(models)} --steps {steps} {size}", "estimate": need.total,
            "activations": need.activations, "weights": need.weights, "measured": peak, "saved": None}


def _run(args: list[str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _mib(n: object) -> str:
    return "-" if n is None else f"{int(n) / 2**20:.0f}"  # type: ignore[call-overload]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=2, metavar=("NAME", "SHAPE"), help="measure one trace in this process")
    ap.add_argument("--compare", nargs=3, metavar=("NAMES", "STEPS", "SHAPE"), help="measure one comparison")
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(*a.one)))
        return
    if a.compare:
        print(json.dumps(one_compare(a.compare[0], int(a.compare[1]), a.compare[2])))
        return
    print("| case | estimate MiB | of which activations | measured peak MiB | estimate / peak | "
          "saved tensors + weights + grads / peak |")
    print("|---|---|---|---|---|---|")
    runs = [["--one", n, s] for n, s in CASES] + [["--compare", m, str(n), s] for m, n, s in COMPARES]
    for args in runs:
        r = _run(args)
        est, meas = int(r["estimate"]), int(r["measured"])  # type: ignore[call-overload]
        alt = "-"
        if r["saved"] is not None:
            alt_bytes = est - int(r["activations"]) + int(r["saved"])  # type: ignore[call-overload]
            alt = f"{alt_bytes / meas:.2f}"
        print(f"| {r['case']} | {_mib(est)} | {_mib(r['activations'])} | {_mib(meas)} | {est / meas:.2f} | {alt} |",
              flush=True)


if __name__ == "__main__":
    main()
