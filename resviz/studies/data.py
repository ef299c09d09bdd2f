"""Batches for comparison runs: synthetic, a small real data set, or an ImageFolder-style directory.

Every model in a comparison sees the *same* batches in the same order, drawn once from a seeded
generator, so differences between models come from the architectures and not from the data.

* ``synthetic``: one smooth random template per class plus Gaussian noise. The signal is learnable
  (a linear read-out of the template separates the classes), so a loss curve that does not fall says
  something about optimisation, which is what He et al. 2015 (arXiv:1512.03385, Fig. 1 and Sec. 4.1)
  compare plain and residual nets on.
* ``digits``: the 1,797 8x8 handwritten digits (UCI ML hand-written digits, as shipped inside
  scikit-learn), upsampled to the requested size. With ``held_out`` > 0 a stratified share of each
  class is set aside (:func:`split_indices`, the same images whatever the run's seed), standardised
  with the training images' statistics and never put in a training batch.
* a directory ``PATH/<class>/<image>`` as torchvision's ``ImageFolder`` reads it, decoded with Pillow.
  Corrupt or unreadable images are skipped and listed; too few classes or images is a user error.

scikit-learn and Pillow come with the ``data`` extra (``pip install 'resviz[data]'``): asking for
``digits`` or a folder without them is a one-line error; synthetic data needs neither.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from resviz.errors import ResvizError, clip, clip_path
from resviz.extras import message, require
from resviz.records import DataInfo, DataKind

ImageShape = tuple[int, int, int]
Batch = tuple[Tensor, Tensor]

#: Seed of the held-out split: fixed, so runs with different seeds are evaluated on the same images.
SPLIT_SEED = 0

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
SYNTHETIC_CLASSES = 10


@dataclass
class Batches:
    """``count`` CPU batches (inputs, integer labels), each made when asked for, and where they came
    from. Batch ``i`` is the same tensor every time it is asked for (it depends only on the seed and
    ``i``), so every model sees the same data while memory holds one batch, not ``count``."""

    info: DataInfo
    count: int
    make: Callable[[int], Batch]
    held_out: Batch | None = None  # every held-out image and its label, standardised like the batches

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Batch:
        return self.make(index % self.count)

    @property
    def items(self) -> list[Batch]:
        """Every batch, made now (for small counts: inspection and tests)."""
        return [self.make(i) for i in range(self.count)]


def load_batches(
    data: str | os.PathLike[str], count: int, batch: int, image_shape: ImageShape, seed: int = 0,
    max_classes: int | None = None, held_out: float = 0.0,
) -> Batches:
    """``count`` batches of ``batch`` images shaped ``image_shape`` (C, H, W) from ``data``.

    ``max_classes`` is the smallest number of outputs among the compared models: labels must fit.
    ``held_out`` is the share of ``digits`` kept out of training (:attr:`Batches.held_out`).
    """
    if batch < 1 or count < 1:
        raise ResvizError(f"batch size and batch count must be at least 1, got {batch} and {count}")
    c, h, w = image_shape
    if min(c, h, w) < 1:
        raise ResvizError(f"image shape {c}x{h}x{w} has a dimension below 1")
    gen = torch.Generator().manual_seed(seed)
    key = _data_key(data)
    if held_out and key.lower() != "digits":
        raise ResvizError("a held-out evaluation needs --data digits (synthetic data and folders have no split)")
    if key.lower() == "synthetic":
        classes = SYNTHETIC_CLASSES if max_classes is None else max(2, min(SYNTHETIC_CLASSES, max_classes))
        return _synthetic(count, batch, image_shape, classes, gen)
    if key.lower() == "digits":
        out = _digits(count, batch, image_shape, gen, held_out)
    else:
        out = _folder(Path(key).expanduser(), count, batch, image_shape, gen)
    if max_classes is not None and out.info.num_classes > max_classes:
        raise ResvizError(
            f"the data has {out.info.num_classes} classes but a compared model has only "
            f"{max_classes} outputs; set num_classes in its spec"
        )
    return out


def _seeds(gen: torch.Generator) -> int:
    """A base seed drawn from ``gen``: batch ``i`` is drawn from a generator seeded ``base + i``."""
    return int(torch.randint(0, 2**62, (1,), generator=gen))


#: Copies of the images a real data set holds at once while it is standardised (the decoded or
#: upsampled images, their float copy, the standardised result).
_DATA_COPIES = 3
DIGITS_IMAGES = 1797


def _data_key(data: str | os.PathLike[str]) -> str:
    """``data`` as given, stripped; empty is refused (it would read the current folder)."""
    key = str(data).strip()
    if not key:
        raise ResvizError("no data given: use synthetic, digits or a folder of class folders")
    return key


def data_bytes(data: str | os.PathLike[str], count: int, batch: int, image_shape: ImageShape) -> int:
    """Host bytes :func:`load_batches` holds besides the batch being made, for the memory check
    before a run: the class templates for ``synthetic``; every image, upsampled to ``image_shape``,
    :data:`_DATA_COPIES` times over for ``digits`` and a folder (as many images as ``count``
    batches need, at most the folder's). Refuses a folder that does not exist, in one line."""
    c, h, w = image_shape
    image = 4 * c * h * w
    key = _data_key(data)
    if key.lower() == "synthetic":
        return SYNTHETIC_CLASSES * image
    if key.lower() == "digits":
        return _DATA_COPIES * DIGITS_IMAGES * image
    files = sum(len(fs) for _, fs in _list_classes(Path(key).expanduser()))
    return _DATA_COPIES * min(files, count * batch) * image


def _synthetic(count: int, batch: int, shape: ImageShape, classes: int, gen: torch.Generator) -> Batches:
    """Class templates: 4x4 random patterns upsampled (smooth, so convolutions can pick them up)."""
    c, h, w = shape
    coarse = torch.randn(classes, c, 4, 4, generator=gen)
    templates = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    templates = templates / templates.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)
    base = _seeds(gen)

    def make(i: int) -> Batch:
        g = torch.Generator().manual_seed(base + i)
        y = torch.randint(0, classes, (batch,), generator=g)
        return templates[y] + torch.randn(batch, c, h, w, generator=g), y

    info = DataInfo(
        DataKind.SYNTHETIC, "class templates + unit Gaussian noise", classes,
        tuple(str(i) for i in range(classes)), count * batch, shape,
    )
    return Batches(info, count, make)


def split_indices(labels: Tensor, share: float, seed: int = SPLIT_SEED) -> tuple[Tensor, Tensor]:
    """(training, held-out) indices into ``labels``: ``round(share * n_c)`` images of each class
    ``c`` held out, drawn from a permutation seeded ``seed`` (stratified, so the held-out error
    weighs the classes as the data does). Both sorted; together they are every index, once."""
    if not 0.0 <= share < 1.0:
        raise ResvizError(f"the held-out share must be from 0 to below 1, got {clip(share)}")
    gen = torch.Generator().manual_seed(seed)
    held: list[Tensor] = []
    for cls in torch.unique(labels).tolist():
        members = torch.nonzero(labels == cls).flatten()
        order = members[torch.randperm(len(members), generator=gen)]
        held.append(order[: round(share * len(members))])
    out = torch.zeros(len(labels), dtype=torch.bool)
    if held:
        out[torch.cat(held)] = True
    return torch.nonzero(~out).flatten(), torch.nonzero(out).flatten()


def _digits(count: int, batch: int, shape: ImageShape, gen: torch.Generator, held_out: float) -> Batches:
    """The digits upsampled to ``shape``; with ``held_out`` > 0, split before standardising."""
    c, h, w = shape
    images, labels, names = _digits_arrays()
    x = torch.from_numpy(images).float().unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False).expand(-1, c, -1, -1)
    y = torch.from_numpy(labels).long()
    if not held_out:
        info = DataInfo(DataKind.DIGITS, "UCI hand-written digits (scikit-learn)", 10, names, len(labels), shape)
        return _sample(x, y, count, batch, gen, info)
    train, held = split_indices(y, held_out)
    info = DataInfo(
        DataKind.DIGITS, "UCI hand-written digits (scikit-learn)", 10, names, len(labels), shape,
        train_images=len(train), held_out_images=len(held),
    )
    return _sample(x[train], y[train], count, batch, gen, info, (x[held], y[held]))


def _sample(
    x: Tensor, y: Tensor, count: int, batch: int, gen: torch.Generator, info: DataInfo,
    held_out: Batch | None = None,
) -> Batches:
    """Standardise per channel (with the statistics of ``x``, the training images, also for
    ``held_out``), then draw batches from seeded permutations of the images, one permutation per
    pass over them (cycled when the data is shorter than ``count`` batches)."""
    x = x.float()
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    x = (x - mean) / std
    held = ((held_out[0].float() - mean) / std, held_out[1]) if held_out is not None else None
    n, base = len(y), _seeds(gen)

    def positions(start: int, stop: int) -> Tensor:
        parts = []
        for cycle in range(start // n, (stop - 1) // n + 1):
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(base + cycle))
            lo, hi = max(start - cycle * n, 0), min(stop - cycle * n, n)
            parts.append(perm[lo:hi])
        return torch.cat(parts)

    def make(i: int) -> Batch:
        idx = positions(i * batch, (i + 1) * batch)
        return x[idx].contiguous(), y[idx].contiguous()

    return Batches(info, count, make, held)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read scikit-learn's packaged copy of the digits without importing all of scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ResvizError(message("sklearn", "data", "--data digits"))
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        with gzip.open(path, "rt") as fh:
            values = np.asarray(fh.read().replace("\n", ",").strip(",").split(","), dtype=np.float32)
        table = values.reshape(-1, 65)  # 64 pixels and the label per row
        images, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    else:  # a future layout: fall back to the public loader
        # Imported here: scikit-learn is slow to import (bench/RESULTS.md, imports) and only this fallback needs it.
        bunch = require("sklearn.datasets", "data", "--data digits").load_digits()
        images, labels = bunch.images, bunch.target.astype(np.int64)
    return images.astype(np.float32), labels, tuple(str(i) for i in range(10))


def _list_classes(root: Path) -> list[tuple[str, list[Path]]]:
    shown = clip_path(root)
    try:
        exists, is_dir = root.exists(), root.is_dir()
    except OSError as exc:  # a name longer than the file system takes, a loop of links
        raise ResvizError(f"cannot read data directory {shown}: {exc.strerror or exc}") from None
    if not exists:
        raise ResvizError(f"data directory {shown} does not exist (use synthetic, digits or a folder)")
    if not is_dir:
        raise ResvizError(f"data path {shown} is not a directory of class folders")
    try:
        subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        found = [
            (d.name, sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()))
            for d in subdirs
        ]
    except PermissionError:
        raise ResvizError(f"cannot read data directory {shown}: permission denied") from None
    found = [(name, files) for name, files in found if files]
    if not found:
        raise ResvizError(f"data directory {shown} has no images in class folders (expected {shown}/<class>/*.png)")
    if len(found) < 2:
        raise ResvizError(f"data directory {shown} has one class ({clip(found[0][0])}); a classifier needs at least "
                          "two")
    return found


def _decode(path: Path, shape: ImageShape, pil_image: Any) -> np.ndarray | None:
    """One image as float32 (C, H, W) in [0, 1], or None when Pillow (``pil_image``: ``PIL.Image``)
    cannot decode it. An image large enough for Pillow's decompression-bomb warning is skipped too:
    decoding it costs gigabytes, and the warning would print before the run's own output."""
    c, h, w = shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pil_image.DecompressionBombWarning)
            im = pil_image.open(path)
        with im:
            im.load()
            small = im.convert("L" if c == 1 else "RGB").resize((w, h), pil_image.Resampling.BILINEAR)
            arr = np.asarray(small, dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError, pil_image.DecompressionBombError, pil_image.DecompressionBombWarning):
        return None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _folder(root: Path, count: int, batch: int, shape: ImageShape, gen: torch.Generator) -> Batches:
    """Decode as many images as the run needs, in a seeded order, skipping the corrupt ones."""
    if shape[0] not in (1, 3):
        raise ResvizError(f"image folders give 1 or 3 channels; --input asks for {shape[0]}")
    classes = _list_classes(root)
    image_module = require("PIL.Image", "data", "an image folder (--data PATH)")
    files = [(f, label) for label, (_, fs) in enumerate(classes) for f in fs]
    order = torch.randperm(len(files), generator=gen).tolist()
    need = count * batch
    images: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[str] = []
    for i in order:
        if len(images) >= need:
            break
        path, label = files[i]
        arr = _decode(path, shape, image_module)
        if arr is None:
            skipped.append(str(path.relative_to(root)))
            continue
        images.append(arr)
        labels.append(label)
    if not images:
        raise ResvizError(f"no readable image in {clip_path(root)}: all {len(skipped)} files failed to decode")
    notes = (f"skipped {len(skipped)} corrupt or unreadable image(s)",) if skipped else ()
    info = DataInfo(
        DataKind.FOLDER, str(root), len(classes), tuple(n for n, _ in classes), len(files), shape,
        tuple(sorted(skipped)), notes,
    )
    return _sample(torch.from_numpy(np.stack(images)), torch.tensor(labels), count, batch, gen, info)
