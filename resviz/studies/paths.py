"""Paths study: residual networks as ensembles of paths (Veit, Wilber, Belongie 2016, arXiv:1605.06431,
Sec. 5 and Fig. 6).

Unrolled, a network of n residual blocks ``y_i = f_i(y_{i-1}) + s_i(y_{i-1})`` is a sum of 2^n
paths; a path of length k runs through the residual branch f of k blocks and through the shortcut
s of the other n - k, so there are C(n, k) paths of length k (a binomial distribution centred on
n / 2). Veit et al. count every block alike, the downsampling blocks of ResNet-110 included (54
blocks, 2^54 paths); so does this study: at a downsampling block the "skip" is its shortcut
(projection or zero-pad option A), not an identity.

Gradient through paths of length k, as Veit et al. measure it: the forward pass runs whole and
unchanged; in the backward pass k random blocks pass the gradient through their residual branch
only and the other n - k through their shortcut only. Two implementations, equal to float
precision (the tests check it against a third, written independently):

* :func:`gated_gradients`, the definition: two tensor hooks per block on the views its
  :class:`~resviz.model.blocks.Fork` returns (main input, skip input), the closed branch's hook
  returning zeros, and one whole backward per subset;
* :func:`chained_gradients`, what the study runs: the same forward, then per subset a backward
  block by block (from a block's output to the one fork view the subset opens), so a closed
  residual branch costs no backward work at all; several times faster on a deep net. It needs
  the blocks to form one chain and refuses otherwise.

Because the backward pass is linear in the gradient, the gated gradients of all 2^n subsets add up
to the full gradient dL/d(input) exactly. The gradient a post-activation block's ReLU after the
addition lets through is part of every path.

Measured quantity: the L2 norm of dL/d(input) over the whole batch, L = mean cross entropy against
random labels (the paper trains on CIFAR-10 and measures on data; at initialisation random labels
carry no signal either way). BatchNorm uses batch statistics, as in the training step whose
gradient Veit et al. decompose; its running statistics are restored afterwards. One forward, then
one backward per sampled subset on the retained graph. ``grad_norm(k)`` is the mean over
``samples_per_k`` random subsets (all subsets, exactly, when there are no more than that), with
standard error std / sqrt(samples). ``contribution(k) = C(n, k) * grad_norm(k)`` is the paper's
Fig. 6(c); the *effective range* is the shortest contiguous range of lengths holding at least
``fraction`` of the summed contribution (the paper reads "5-17" off its figure for a trained
ResNet-110 without stating a share).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from resviz.errors import ResvizError
from resviz.measure.outputs import find_logits
from resviz.model.blocks import ResidualBlock, find_blocks
from resviz.records.paths import PathLength, PathsSettings, PathsStudy
from resviz.studies.held import held

DEFAULT_FRACTION = 0.9
CHAIN_TOLERANCE = 1e-3
"""How far (relative L2) the block-by-block gradient with every branch open may sit from autograd's."""


def residual_blocks(model: nn.Module, label: str, study: str) -> list[tuple[str, ResidualBlock]]:
    """The model's blocks, all resviz blocks with a shortcut; else a one-line refusal."""
    found = find_blocks(model)
    if not found:
        raise ResvizError(f"{label} has no residual blocks: the {study} study needs a residual network")
    out: list[tuple[str, ResidualBlock]] = []
    for name, block in found:
        if not isinstance(block, ResidualBlock):
            raise ResvizError(f"block {name} of {label} is not a resviz block: the {study} study supports "
                              "resviz models only")
        out.append((name, block))
    return out


class PathGate:
    """Tensor hooks on every block's fork that route the backward pass through one branch per block.

    ``active[i]`` True: block i passes gradient through its residual (main) branch only; False:
    through its shortcut only. Set ``active`` between backward passes on the same graph.
    """

    def __init__(self, blocks: Sequence[tuple[str, ResidualBlock]]) -> None:
        self.blocks = blocks
        self.active = [False] * len(blocks)
        self.handles: list[RemovableHandle] = []

    def attach(self) -> None:
        for i, (_, block) in enumerate(self.blocks):
            if block.fork is not None:
                self.handles.append(block.fork.register_forward_hook(self._fork_hook(i)))

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _fork_hook(self, i: int) -> Any:
        def gate(main_open: bool) -> Any:
            def hook(g: Tensor) -> Tensor:
                return g if self.active[i] == main_open else torch.zeros_like(g)
            return hook

        def fork_hook(_m: nn.Module, _args: tuple[Any, ...], out: tuple[Tensor, Tensor]) -> None:
            if out[0].requires_grad:
                out[0].register_hook(gate(True))
                out[1].register_hook(gate(False))

        return fork_hook


def subsets(n: int, k: int, samples: int, rng: random.Random) -> tuple[list[tuple[int, ...]], bool]:
    """Every k-subset of range(n) when there are at most ``samples`` of them (exhaustive), else
    ``samples`` uniform random ones."""
    if math.comb(n, k) <= samples:
        return list(itertools.combinations(range(n), k)), True
    return [tuple(sorted(rng.sample(range(n), k))) for _ in range(samples)], False


def effective_range(ks: Sequence[int], contributions: Sequence[float], fraction: float) -> tuple[int, int]:
    """Shortest contiguous run of ``ks`` (sorted) whose contributions sum to at least ``fraction``
    of their total; among equally short runs the one holding most. (ks[0], ks[-1]) when the total
    is zero or not finite."""
    total = math.fsum(contributions)
    if not ks:
        return (0, 0)
    if not math.isfinite(total) or total <= 0:
        return (ks[0], ks[-1])
    best: tuple[int, float, int, int] | None = None
    for i in range(len(ks)):
        acc = 0.0
        for j in range(i, len(ks)):
            acc += contributions[j]
            if acc >= fraction * total * (1 - 1e-12):
                cand = (j - i, -acc, ks[i], ks[j])
                if best is None or cand[:2] < best[:2]:
                    best = cand
                break
    assert best is not None
    return (best[2], best[3])


def _check(input_shape: Sequence[int], samples_per_k: int, fraction: float) -> None:
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ResvizError(f"input shape must be (batch, C, H, W) with sizes of at least 1, got {tuple(input_shape)}")
    if samples_per_k < 1:
        raise ResvizError(f"samples per path length must be at least 1, got {samples_per_k}")
    if not 0 < fraction <= 1:
        raise ResvizError(f"the effective range's share must be in (0, 1], got {fraction}")


def _lengths(n: int, ks: Sequence[int] | None) -> list[int]:
    if ks is None:
        return list(range(n + 1))
    bad = [k for k in ks if not 0 <= k <= n]
    if bad:
        raise ResvizError(f"path lengths must be between 0 and {n} (the number of blocks), got {bad[0]}")
    return sorted(set(ks))


def _loss(out: Any, x: Tensor, y: Tensor | torch.Generator) -> Tensor:
    logits = find_logits(out)
    if logits is None or logits.ndim != 2:
        got = tuple(logits.shape) if logits is not None else type(out).__name__
        raise ResvizError(f"the paths study needs (batch, classes) logits, the model returns {got}")
    if isinstance(y, torch.Generator):
        y = torch.randint(0, logits.shape[1], (x.shape[0],), generator=y).to(x.device)
    return F.cross_entropy(logits, y)


def gated_gradients(
    model: nn.Module, blocks: Sequence[tuple[str, ResidualBlock]], x: Tensor, y: Tensor | torch.Generator,
    patterns: Sequence[Sequence[int]],
) -> Iterator[Tensor]:
    """dL/dx for each pattern (indices of the blocks routing gradient through their residual
    branch), from one forward pass and one whole backward per pattern, gated by :class:`PathGate`;
    L = mean cross entropy against ``y`` (class indices, or random ones drawn from a generator).
    The caller holds the model (:func:`~resviz.studies.held.held`); the module hooks are removed
    right after the forward."""
    gate = PathGate(blocks)
    gate.attach()
    try:
        x = x.detach().requires_grad_(True)
        logits = model(x)
    finally:
        gate.detach()  # the tensor hooks registered during the forward stay with the graph
    loss = _loss(logits, x, y)
    for pattern in patterns:
        on = set(pattern)
        gate.active[:] = [i in on for i in range(len(blocks))]
        (g,) = torch.autograd.grad(loss, x, retain_graph=True)
        yield g


class _Chain:
    """What one forward leaves for :func:`chained_gradients`: per block call its input, the fork's
    input and two output views, and its output."""

    def __init__(self, blocks: Sequence[tuple[str, ResidualBlock]]) -> None:
        self.blocks = blocks
        self.calls: list[dict[str, Any]] = []
        self.handles: list[RemovableHandle] = []

    def attach(self) -> None:
        for i, (_, block) in enumerate(self.blocks):
            self.handles.append(block.register_forward_pre_hook(self._enter(i)))
            self.handles.append(block.register_forward_hook(self._leave))
            if block.fork is not None:
                self.handles.append(block.fork.register_forward_hook(self._fork))

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _enter(self, i: int) -> Any:
        def pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
            self.calls.append({"index": i, "input": args[0] if args else None})
        return pre

    def _fork(self, _m: nn.Module, args: tuple[Any, ...], out: tuple[Tensor, Tensor]) -> None:
        self.calls[-1].update(fork_input=args[0], main=out[0], skip=out[1])

    def _leave(self, _m: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
        self.calls[-1]["output"] = out

    def check(self, label: str) -> None:
        """Refuse, in one line, a forward in which the blocks did not run once each, in order."""
        order = [d["index"] for d in self.calls]
        if order != list(range(len(self.blocks))):
            raise ResvizError(f"the residual blocks of {label} do not run once each, in order: the paths "
                              "study counts C(n, k) paths of a chain of n blocks")
        if any("main" not in d or not isinstance(d.get("output"), Tensor) for d in self.calls):
            raise ResvizError(f"a residual block of {label} returned no tensor or skipped its fork")


def chained_gradients(
    model: nn.Module, blocks: Sequence[tuple[str, ResidualBlock]], x: Tensor, y: Tensor | torch.Generator,
    patterns: Sequence[Sequence[int]], label: str = "the model",
) -> Iterator[Tensor]:
    """The gradients of :func:`gated_gradients`, computed block by block: the backward from the loss
    to the last block's output runs once; then, per pattern and block, a backward from the block's
    output to the one fork view the pattern opens, so a closed residual branch costs nothing (a
    closed branch's zeros still run through every layer of a gated whole backward).

    Needs the blocks to form a chain from the input to the loss: each runs once, in order, and
    nothing reaches the loss around them. The first is checked on the forward, the second by
    comparing the chain's gradient with both branches open against plain autograd (one relative
    :data:`CHAIN_TOLERANCE`); either failing is a one-line refusal.
    """
    chain = _Chain(blocks)
    chain.attach()
    try:
        x = x.detach().requires_grad_(True)
        logits = model(x)
    finally:
        chain.detach()
    chain.check(label)
    loss = _loss(logits, x, y)
    calls = chain.calls
    (top,) = torch.autograd.grad(loss, calls[-1]["output"], retain_graph=True)

    def backward(open_main: Callable[[int], bool], open_skip: Callable[[int], bool]) -> Tensor:
        g = top
        for i in range(len(calls) - 1, -1, -1):
            d = calls[i]
            views = [d[key] for key, on in (("main", open_main(i)), ("skip", open_skip(i))) if on]
            parts = torch.autograd.grad(d["output"], views, g, retain_graph=True)
            g = parts[0] if len(parts) == 1 else parts[0] + parts[1]
            if d["fork_input"] is not d["input"]:  # a pre-activation shared by both branches
                (g,) = torch.autograd.grad(d["fork_input"], d["input"], g, retain_graph=True)
            below = calls[i - 1]["output"] if i else x
            if d["input"] is not below:  # layers between two blocks, or the stem
                (g,) = torch.autograd.grad(d["input"], below, g, retain_graph=True)
        return g

    (full,) = torch.autograd.grad(loss, x, retain_graph=True)
    both = backward(lambda _i: True, lambda _i: True)
    if float((both - full).norm()) > CHAIN_TOLERANCE * float(full.norm()):
        raise ResvizError(f"gradient reaches the input of {label} around its residual blocks: the paths study "
                          "needs the blocks to form one chain")

    def run() -> Iterator[Tensor]:
        for pattern in patterns:
            on = set(pattern)
            yield backward(lambda i: i in on, lambda i: i not in on)  # noqa: B023 (used at once)

    return run()


def paths_study(
    model_name: str, model: nn.Module, input_shape: Sequence[int] = (8, 3, 32, 32), samples_per_k: int = 10,
    seed: int = 0, ks: Sequence[int] | None = None, fraction: float = DEFAULT_FRACTION, weights: str = "as given",
    data: tuple[Tensor, Tensor] | None = None,
) -> PathsStudy:
    """Veit et al. 2016, Sec. 5 on ``model``: path counts C(n, k) and the gradient norm reaching the
    input through paths of each length k in ``ks`` (all of 0..n by default); see the module
    docstring for the method. ``weights`` names the state of the weights for the record
    (``initialisation``, ``trained``). ``data`` = (inputs, class indices) replaces the random
    input and labels (``input_shape`` is then the inputs' shape). ``model`` is left as it was."""
    if data is not None:
        input_shape = tuple(data[0].shape)
    _check(input_shape, samples_per_k, fraction)
    blocks = residual_blocks(model, model_name, "paths")
    plain = [name for name, b in blocks if b.fork is None]
    if plain:
        raise ResvizError(f"{model_name} has blocks without a shortcut ({plain[0]}): a plain net has one path, "
                          "the paths study needs a residual network")
    n, lengths = len(blocks), _lengths(len(blocks), ks)
    rng = random.Random(seed)
    plan = {k: subsets(n, k, samples_per_k, rng) for k in lengths}
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*input_shape, generator=gen) if data is None else data[0]
    with held(model, model_name, inplace=True):
        model.train()
        param = next(model.parameters(), None)
        if param is not None:
            x = x.to(param.device, param.dtype if data is None else x.dtype)
        y = gen if data is None else data[1].to(x.device)
        patterns = [p for k in lengths for p in plan[k][0]]
        grads = chained_gradients(model, blocks, x, y, patterns, model_name)
        norms = torch.stack([g.norm() for g in grads])
    values = norms.double().cpu().tolist()  # one transfer for every measurement
    rows = _rows(n, lengths, plan, values)
    range_ = effective_range([r.k for r in rows], [r.contribution for r in rows], fraction)
    loss = "cross entropy, " + ("random labels" if data is None else "given labels")
    settings = PathsSettings(tuple(int(d) for d in input_shape), samples_per_k, seed, fraction, loss, weights=weights)
    return PathsStudy(model_name, tuple(name for name, _ in blocks), settings, tuple(rows), range_,
                      _notes(n, lengths))


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """The mean of ``values`` and its standard error (sample standard deviation / sqrt(n); 0 for one value)."""
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    var = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


def _rows(
    n: int, lengths: Sequence[int], plan: dict[int, tuple[list[tuple[int, ...]], bool]], values: list[float],
) -> list[PathLength]:
    rows, pos = [], 0
    for k in lengths:
        pats, exhaustive = plan[k]
        vals = values[pos:pos + len(pats)]
        pos += len(pats)
        mean, err = mean_stderr(vals)
        err = 0.0 if exhaustive else err  # every subset measured: nothing to estimate
        paths = math.comb(n, k)
        rows.append(PathLength(k, paths, mean, err, paths * mean, len(vals), exhaustive))
    return rows


def _notes(n: int, lengths: Sequence[int]) -> tuple[str, ...]:
    notes = [f"{n} residual blocks, 2^{n} paths; downsampling blocks count like the others (Veit et al. 2016)"]
    if len(lengths) < n + 1:
        notes.append(f"{len(lengths)} of the {n + 1} path lengths measured: the effective range is over those only")
    return tuple(notes)


__all__ = [
    "PathGate", "chained_gradients", "effective_range", "gated_gradients", "paths_study", "residual_blocks",
    "subsets",
]
