"""Shattered gradients at initialisation (Balduzzi et al. 2017, "The Shattered Gradients Problem",
arXiv:1702.08591, Fig. 1-2 and Sec. 3).

Balduzzi et al. show that the gradient of a deep plain network with respect to its input looks
like white noise as the input moves (correlation between nearby inputs decays as 2^-depth), while
a residual network's gradient stays correlated (decay as 1/sqrt(depth)). This study measures that
on real models: ``points`` inputs on a line x(t) = x0 + t (x1 - x0), t = 0, 1/(P-1), ..., 1, with
x0 and x1 seeded N(0, 1) images, and at each point g_i = d logit_k(x_i) / d x_i for one fixed logit
k (``output_index``), flattened to a vector. From the P gradients:

* ``neighbor_correlation`` = mean over i < P-1 of cos(g_i, g_{i+1}) (uncentred cosine similarity);
* ``autocorrelation[k]``   = R(k) = mean_i <g_i - m, g_{i+k} - m> / mean_i |g_i - m|^2 for
  k = 0 .. ``max_lag``, with m the mean gradient over the line: the sample autocorrelation
  function of the gradient sequence (Balduzzi et al., Fig. 2), summed over input components and
  averaged over the P-k pairs at each lag; R(0) = 1, white noise gives R(k) near 0 for k > 0;
* ``grad_norm_min``/``mean``/``max`` = the smallest, mean and largest |g_i|.

BatchNorm modes. ``eval``: running statistics, so every point is independent and one backward
pass of sum_i logit_k(x_i) gives every g_i exactly (points go through in chunks of
:data:`CHUNK`, which changes nothing for independent points). ``train``: the P points form one
batch and share its statistics, so logit_k(x_i) depends on every point. Two exact definitions:

* ``frozen-stats`` (default): each BatchNorm's batch mean and population variance are taken from
  a train-mode pass over the batch without gradients, then held constant: every layer normalises
  exactly as in the train-mode forward, and g_i is the gradient with respect to x_i with the
  statistics fixed. Computed by loading the batch statistics as running statistics and taking
  eval-mode gradients: one more forward pass than ``eval``, one backward pass.
* ``full``: the total derivative, row i of d logit_k(x_i) / d X for the batch X, which also follows
  x_i's own effect on the statistics (of order 1/P per layer). One backward pass per point:
  affordable on small models and few points only.

The model is left as it was (see :func:`resviz.studies.held.held`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from resviz.errors import ResvizError, quote
from resviz.measure.compiled import eager, original
from resviz.measure.outputs import find_logits
from resviz.model.blocks import find_blocks, shortcut_type
from resviz.records import ShortcutKind
from resviz.records.signal import BatchNormMode, ShatterModel, ShatterStudy, TrainGradient
from resviz.studies.held import failures_in_one_line, held
from resviz.studies.signal import check_models, check_shape, gaussian, placement, set_batchnorm

Models = Sequence[tuple[str, nn.Module]]

CHUNK = 64
"""Points per forward/backward pass where points are independent (eval mode, frozen statistics):
bounds the memory of the graph without changing any gradient."""

BN_MODES = {"eval": (BatchNormMode.EVAL,), "train": (BatchNormMode.TRAIN,),
          "both": (BatchNormMode.EVAL, BatchNormMode.TRAIN)}


def line_points(shape: Sequence[int], points: int, seed: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The ``points`` inputs x0 + t (x1 - x0), t evenly spaced in [0, 1], x0 and x1 seeded N(0, 1)."""
    ends = gaussian((2, *shape), seed, device, dtype)
    t = torch.linspace(0.0, 1.0, points, device=device, dtype=dtype).reshape(-1, *([1] * len(shape)))
    return ends[0] + t * (ends[1] - ends[0])


def _logit(out: Any, k: int, label: str) -> Tensor:
    found = find_logits(out)
    if found is None or found.dim() != 2:
        got = tuple(found.shape) if found is not None else type(out).__name__
        raise ResvizError(f"{label} must return (batch, classes) logits, got {got}")
    out = found
    if not 0 <= k < out.shape[1]:
        raise ResvizError(f"output index {k} is out of range: {label} has {out.shape[1]} outputs")
    return out[:, k]


def independent_grads(model: nn.Module, x: Tensor, k: int, label: str) -> Tensor:
    """g_i for points that do not interact (eval-mode BatchNorm): the gradient of the summed logit,
    chunk by chunk, is each point's own gradient. Returns (P, D)."""
    grads = []
    for chunk in x.split(CHUNK):
        chunk = _fast_layout(chunk).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(_logit(model(chunk), k, label).sum(), chunk)
        grads.append(g.reshape(g.shape[0], -1))
    return torch.cat(grads)


def _fast_layout(x: Tensor) -> Tensor:
    """Images in channels-last memory on the CPU, where oneDNN's convolutions and their backward
    run faster in that layout (bench/study_bench_a.py); the values are the same, the model's own
    tensors are not touched."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 and x.device.type == "cpu" else x


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def _batch_stats_kept(bns: list[nn.modules.batchnorm._BatchNorm]) -> Iterator[dict[nn.Module, list[int]]]:
    """BatchNorm layers that keep their batch's statistics as running statistics: momentum 1
    makes the running update ``running = batch`` (the mean, and the variance with divisor n - 1),
    so BatchNorm's own reduction is reused instead of a second pass over every input. Yields, per
    layer, the number of values per channel of each call."""
    sizes: dict[nn.Module, list[int]] = {}

    def pre(m: nn.Module, args: tuple[Any, ...]) -> None:
        sizes.setdefault(m, []).append(args[0].numel() // args[0].shape[1])

    momenta = [(m, m.momentum) for m in bns]
    handles = [m.register_forward_pre_hook(pre) for m in bns]
    try:
        for m in bns:
            m.momentum = 1.0
        yield sizes
    finally:
        for h in handles:
            h.remove()
        for m, momentum in momenta:
            m.momentum = momentum


def frozen_stats_grads(model: nn.Module, x: Tensor, k: int, label: str) -> Tensor:
    """g_i with every BatchNorm normalising by the batch's statistics, held constant (module
    docstring). The model's BatchNorm layers must be in train mode on entry; their running
    statistics are overwritten with the batch's (the caller restores them)."""
    bns = _batchnorms(model)
    for m in bns:
        if m.running_mean is None or m.running_var is None:
            raise ResvizError(f"{label}: a BatchNorm layer keeps no running statistics; use train_gradient='full'")
    with _batch_stats_kept(bns) as sizes, torch.no_grad():
        model(_fast_layout(x))
    for m in bns:
        n = sizes.get(m, [])
        if len(n) > 1:
            raise ResvizError(f"{label}: a BatchNorm layer runs more than once per forward; use bn_mode='eval'")
        if n and n[0] > 1 and m.running_var is not None:
            m.running_var.mul_((n[0] - 1) / n[0])  # the population variance BatchNorm normalised by
        m.eval()
    return independent_grads(model, x, k, label)


def full_grads(model: nn.Module, x: Tensor, k: int, label: str) -> Tensor:
    """g_i = row i of d logit_k(x_i) / d X, one backward pass per point through the batch's graph."""
    xb = x.detach().requires_grad_(True)
    logits = _logit(model(xb), k, label)
    rows = []
    for i in range(x.shape[0]):
        (g,) = torch.autograd.grad(logits[i], xb, retain_graph=i + 1 < x.shape[0])
        rows.append(g[i].reshape(-1))
    return torch.stack(rows)


def correlations(grads: Tensor, max_lag: int) -> Tensor:
    """``[neighbor_correlation, min, mean, max norm, R(0), ..., R(max_lag)]`` of (P, D) gradients,
    in float64 on their device (formulas in the module docstring)."""
    g = grads.double()
    norms = g.norm(dim=1)
    cos = (g[:-1] * g[1:]).sum(1) / (norms[:-1] * norms[1:])
    c = g - g.mean(0)
    power = c.square().sum(1).mean()
    acf = [power] + [(c[:-k] * c[k:]).sum(1).mean() for k in range(1, max_lag + 1)]
    head = torch.stack((cos.mean(), norms.min(), norms.mean(), norms.max()))
    return torch.cat((head, torch.stack(acf) / power))


GradFn = Callable[[nn.Module, Tensor, int, str], Tensor]


def _grad_fn(mode: BatchNormMode, how: TrainGradient) -> GradFn:
    if mode is BatchNormMode.EVAL:
        return independent_grads
    return frozen_stats_grads if how is TrainGradient.FROZEN_STATS else full_grads


def _measure(
    label: str, model: nn.Module, x: Tensor, mode: BatchNormMode, k: int, max_lag: int, how: TrainGradient,
) -> ShatterModel:
    with held(model, label):
        set_batchnorm(model, mode)
        for p in model.parameters():
            p.requires_grad_(False)  # gradients with respect to the input only
        with failures_in_one_line(label, x.shape), eager(), torch.enable_grad():
            values = correlations(_grad_fn(mode, how)(model, x, k, label), max_lag).tolist()
    blocks = find_blocks(model)
    residual = any(shortcut_type(b) is not ShortcutKind.NONE for _, b in blocks)
    notes = () if mode is BatchNormMode.EVAL else (f"BatchNorm statistics of the {x.shape[0]} points as one batch",)
    return ShatterModel(
        name=label, mode=mode, neighbor_correlation=values[0], autocorrelation=tuple(values[4:]),
        grad_norm_min=values[1], grad_norm_mean=values[2], grad_norm_max=values[3], residual=residual,
        blocks=len(blocks), notes=notes,
    )


def shatter_study(
    models: Models,
    input_shape: Sequence[int] = (3, 32, 32),
    points: int = 256,
    seed: int = 0,
    bn_mode: str = "both",
    output_index: int = 0,
    max_lag: int | None = None,
    train_gradient: TrainGradient | str = TrainGradient.FROZEN_STATS,
) -> ShatterStudy:
    """Gradient correlations along a line of ``points`` inputs of ``input_shape`` (C, H, W) for each
    of ``models`` (``(name, module)`` pairs), with BatchNorm in ``eval``, ``train`` or ``both``
    modes; ``max_lag`` defaults to ``points // 4``. Formulas in the module docstring."""
    check_models(models)
    shape = check_shape(input_shape, 3, "the input shape (C, H, W)")
    if not isinstance(bn_mode, str) or bn_mode not in BN_MODES:
        raise ResvizError(f"bn_mode must be one of {', '.join(BN_MODES)}, got {quote(bn_mode)}")
    if not isinstance(points, int) or points < 3:
        raise ResvizError(f"points must be an integer of at least 3, got {points!r}")
    lag = max(1, points // 4) if max_lag is None else max_lag
    if not 1 <= lag < points:
        raise ResvizError(f"max_lag must be between 1 and {points - 1}, got {lag}")
    try:
        how = TrainGradient(train_gradient)
    except ValueError:
        raise ResvizError(f"train_gradient must be one of {', '.join(g.value for g in TrainGradient)}, "
                          f"got {quote(train_gradient)}") from None
    results: list[ShatterModel] = []
    device = torch.device("cpu")
    for label, module in models:
        model = original(module)
        device, dtype = placement(model)
        x = line_points(shape, points, seed, device, dtype)
        results.extend(_measure(label, model, x, mode, output_index, lag, how) for mode in BN_MODES[bn_mode])
    return ShatterStudy(
        input_shape=shape, points=points, seed=seed, output_index=output_index, max_lag=lag,
        train_gradient=how, models=tuple(results), device=str(device),
    )


__all__ = [
    "CHUNK", "correlations", "frozen_stats_grads", "full_grads", "independent_grads", "line_points",
    "shatter_study",
]
