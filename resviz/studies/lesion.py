"""Lesion study: remove residual blocks from a trained network and measure held-out loss and error
(Veit, Wilber, Belongie 2016, arXiv:1605.06431, Sec. 4, Fig. 3-5).

Veit et al. delete single residual blocks from a trained ResNet-110 at test time: the error barely
moves, except where a block downsamples; removing a layer of a VGG-style plain network breaks it.
Removing growing random sets of blocks raises the error smoothly (Fig. 5), as for an ensemble
losing members.

What "removing" means here:

* a residual block computes as if its residual branch output were zero: its output is what its
  shortcut gives, after whatever follows the addition. For an identity block of a post-activation
  net that is x itself (the ReLU after the addition leaves the non-negative input unchanged); a
  downsampling block passes on its projection or zero-pad shortcut (the paper keeps that path too).
  The hook is a forward pre-hook on the block's :class:`~resviz.model.blocks.ResidualAdd` that
  hands it zeros for the main operand;
* a block of a plain twin has no shortcut: where it keeps the shape it is replaced by the identity
  (a forward hook returning its input); where it changes the shape it cannot be removed and is
  marked (``removable`` False, NaN scores), and random sets are drawn among removable blocks only.

Evaluation runs the model in eval mode without gradients (BatchNorm with running statistics, as
at test time); every hook is removed and the model restored afterwards. Loss is the mean cross
entropy over all held-out images, error the share of wrong top-1 predictions.

:func:`digits_split` gives a deterministic train / held-out split of the digits data set (the
comparison batches of :mod:`resviz.studies.data` sample the whole set, so a lesion study on them
would be measured on training images).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from resviz.errors import ResvizError
from resviz.measure.outputs import logits as scores
from resviz.measure.state import device_of
from resviz.records import DataInfo, DataKind
from resviz.records.paths import LesionBlock, LesionScore, LesionSet, LesionSettings, LesionStudy
from resviz.studies.data import Batch, Batches, ImageShape, _digits_arrays
from resviz.studies.held import held
from resviz.studies.paths import mean_stderr, residual_blocks

DEFAULT_SEEDS = 5


def downsampling(block: nn.Module) -> bool:
    """The block changes the shape of what it passes on (stride or width)."""
    stride = getattr(block, "stride", 1)
    return bool(stride != 1 or getattr(block, "in_channels", 0) != getattr(block, "out_channels", 0))


def removable(block: nn.Module) -> bool:
    """A block with a shortcut can always be removed; a plain one only where it keeps the shape."""
    return getattr(block, "add", None) is not None or not downsampling(block)


def _zero_main(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    main, skip = args[0], args[1]
    return (torch.zeros_like(main), skip)


def _identity(_m: nn.Module, args: tuple[Any, ...], _out: Any) -> Any:
    return args[0]


@contextmanager
def lesioned(blocks: Iterable[nn.Module]) -> Iterator[None]:
    """Remove ``blocks`` (see the module docstring) while the context is open."""
    handles: list[RemovableHandle] = []
    try:
        for block in blocks:
            add = getattr(block, "add", None)
            if isinstance(add, nn.Module):
                handles.append(add.register_forward_pre_hook(_zero_main))
            elif not downsampling(block):
                handles.append(block.register_forward_hook(_identity))
            else:
                raise ResvizError("a plain block that changes the shape cannot be removed")
        yield
    finally:
        for h in handles:
            h.remove()


def evaluate(model: nn.Module, batches: Sequence[Batch]) -> LesionScore:
    """Mean cross entropy and top-1 error of ``model`` as it is (mode and hooks) on ``batches``."""
    device = device_of(model)
    loss = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    with torch.no_grad():
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            logits = scores(model(x), type(model).__name__)
            loss += F.cross_entropy(logits.double(), y, reduction="sum")
            wrong += (logits.argmax(dim=1) != y).sum()
            count += int(y.shape[0])
    return LesionScore(float(loss) / count, float(wrong) / count)


def _select(
    found: Sequence[tuple[str, nn.Module]], names: Sequence[str] | None, label: str,
) -> list[tuple[str, nn.Module]]:
    if names is None:
        return list(found)
    known = dict(found)
    missing = [n for n in names if n not in known]
    if missing:
        raise ResvizError(f"{label} has no residual block {missing[0]!r}; its blocks are {', '.join(known)}")
    return [(n, known[n]) for n in names]


def _materialize(held_out: Iterable[Batch] | Batches) -> list[Batch]:
    """The held-out batches as a list. A :class:`Batches` is read by index up to its length:
    iterating it would never end (its indices wrap around)."""
    if isinstance(held_out, Batches):
        batches = [held_out[i] for i in range(len(held_out))]
    else:
        batches = [(x, y) for x, y in held_out]
    if not batches or sum(int(y.shape[0]) for _, y in batches) == 0:
        raise ResvizError("the lesion study needs held-out data: got no images")
    return batches


def lesion_study(
    model_name: str, model: nn.Module, held_out: Iterable[Batch] | Batches, blocks: Sequence[str] | None = None,
    max_k: int | None = None, seeds: int = DEFAULT_SEEDS, seed: int = 0,
) -> LesionStudy:
    """Veit et al. 2016, Sec. 4 on ``model``: held-out loss and error unlesioned, with each block of
    ``blocks`` (all by default) removed alone, and with k = 1 .. ``max_k`` random removable blocks
    removed at once (``seeds`` draws each; ``max_k`` defaults to half the removable blocks).
    ``model`` is left as it was."""
    if seeds < 1:
        raise ResvizError(f"seeds must be at least 1, got {seeds}")
    chosen = _select(residual_blocks(model, model_name, "lesion"), blocks, model_name)
    batches = _materialize(held_out)
    pool = [(n, b) for n, b in chosen if removable(b)]
    top = len(pool) // 2 if max_k is None else max_k
    if not 0 <= top <= len(pool):
        raise ResvizError(f"max_k must be between 0 and {len(pool)} (the removable blocks), got {top}")
    rng = random.Random(seed)
    draws = [[rng.sample(range(len(pool)), k) for _ in range(seeds)] for k in range(1, top + 1)]
    with held(model, model_name, inplace=True):
        model.eval()
        baseline = evaluate(model, batches)
        rows = [_single(model, name, block, batches) for name, block in chosen]
        sets = [_set(model, k, [[pool[i][1] for i in d] for d in ds], batches) for k, ds in enumerate(draws, 1)]
    plain = all(getattr(b, "add", None) is None for _, b in chosen)
    images = sum(int(y.shape[0]) for _, y in batches)
    settings = LesionSettings(images, seeds, top, seed)
    return LesionStudy(model_name, baseline, tuple(rows), tuple(sets), settings, plain, _notes(plain, rows))


def _single(model: nn.Module, name: str, block: nn.Module, batches: Sequence[Batch]) -> LesionBlock:
    if not removable(block):
        return LesionBlock(name, True, math.nan, math.nan, removable=False)
    with lesioned([block]):
        score = evaluate(model, batches)
    return LesionBlock(name, downsampling(block), score.loss, score.error)


def _set(model: nn.Module, k: int, draws: Sequence[Sequence[nn.Module]], batches: Sequence[Batch]) -> LesionSet:
    scores = []
    for group in draws:
        with lesioned(group):
            scores.append(evaluate(model, batches))
    loss, loss_err = mean_stderr([s.loss for s in scores])
    error, error_err = mean_stderr([s.error for s in scores])
    return LesionSet(k, loss, error, loss_err, error_err, len(scores))


def _notes(plain: bool, rows: Sequence[LesionBlock]) -> tuple[str, ...]:
    notes = []
    if plain:
        notes.append("plain net: a removed block is replaced by the identity")
    fixed = [r.name for r in rows if not r.removable]
    if fixed:
        notes.append(f"{len(fixed)} block(s) change the shape without a shortcut and cannot be removed: "
                     f"{', '.join(fixed)}")
    return tuple(notes)


def digits_split(
    image_shape: ImageShape = (3, 16, 16), held_out: int = 360, batch: int = 64, count: int = 1000,
    seed: int = 0, eval_batch: int | None = None,
) -> tuple[Batches, list[Batch]]:
    """The digits data set split once, deterministically (a seeded permutation): ``held_out``
    images for evaluation (batches of ``eval_batch``, default ``batch``), the rest for ``count`` training batches of
    ``batch`` drawn from seeded permutations. Both are standardised with the training images'
    per-channel mean and std. Needs scikit-learn (the ``data`` extra)."""
    images, labels, names = _digits_arrays()
    total = len(labels)
    if not 0 < held_out < total:
        raise ResvizError(f"held-out images must be between 1 and {total - 1}, got {held_out}")
    c, h, w = image_shape
    x = torch.from_numpy(images).float().unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False).expand(-1, c, -1, -1)
    y = torch.from_numpy(labels).long()
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    test_idx, train_idx = perm[:held_out], perm[held_out:]
    mean = x[train_idx].mean(dim=(0, 2, 3), keepdim=True)
    std = x[train_idx].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    x = (x - mean) / std
    xt, yt = x[train_idx].contiguous(), y[train_idx]
    info = DataInfo(DataKind.DIGITS, "UCI hand-written digits (scikit-learn), training split", 10, names,
                    len(train_idx), image_shape)

    def make(i: int) -> Batch:
        cycle, start = divmod(i * batch, len(yt))
        order = torch.randperm(len(yt), generator=torch.Generator().manual_seed(seed + 1 + cycle))
        idx = torch.cat([order, order])[start:start + batch]
        return xt[idx].contiguous(), yt[idx].contiguous()

    step = eval_batch or batch
    test = [(x[test_idx[i:i + step]].contiguous(), y[test_idx[i:i + step]]) for i in range(0, held_out, step)]
    return Batches(info, count, make), test


__all__ = ["digits_split", "downsampling", "evaluate", "lesion_study", "lesioned", "removable"]
