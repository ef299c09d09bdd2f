"""Batches for comparison runs: synthetic signal, packaged digits, ImageFolder directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resviz.errors import ResvizError
from resviz.studies.data import load_batches


def _write_images(folder: Path, n: int, color: tuple[int, int, int], size: int = 12) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(folder.name) + n)
    for i in range(n):
        arr = np.clip(rng.normal(0, 20, (size, size, 3)) + np.array(color), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"img{i}.png")


def test_synthetic_shapes_labels_and_determinism() -> None:
    a = load_batches("synthetic", 3, 5, (3, 16, 16), seed=1)
    b = load_batches("synthetic", 3, 5, (3, 16, 16), seed=1)
    c = load_batches("synthetic", 3, 5, (3, 16, 16), seed=2)
    assert len(a) == 3
    x, y = a[0]
    assert x.shape == (5, 3, 16, 16) and y.shape == (5,) and y.dtype == torch.int64
    assert int(y.min()) >= 0 and int(y.max()) < 10
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a.items, b.items, strict=True))
    assert not torch.equal(a[0][0], c[0][0])
    assert a.info.kind == "synthetic" and a.info.num_classes == 10


def test_synthetic_signal_is_learnable() -> None:
    """Class means of two independent halves agree: there is a signal a network can learn."""
    data = load_batches("synthetic", 40, 50, (3, 8, 8), seed=0, max_classes=4)
    xs = torch.cat([x for x, _ in data.items])
    ys = torch.cat([y for _, y in data.items])
    half = len(ys) // 2
    means = [
        torch.stack([xs[s][ys[s] == k].mean(0).flatten() for k in range(4)])
        for s in (slice(0, half), slice(half, None))
    ]
    # Nearest class mean from the first half classifies the second half far above chance (25%).
    dist = torch.cdist(xs[half:].flatten(1), means[0])
    accuracy = (dist.argmin(1) == ys[half:]).float().mean().item()
    assert accuracy > 0.8
    assert data.info.num_classes == 4


def test_digits_from_installed_package() -> None:
    pytest.importorskip("sklearn")
    data = load_batches("digits", 2, 16, (3, 32, 32), seed=0)
    x, _ = data[0]
    assert x.shape == (16, 3, 32, 32)
    assert data.info.num_classes == 10 and data.info.num_images == 1797
    assert abs(float(x.mean())) < 0.5  # standardised
    assert torch.equal(x, load_batches("digits", 2, 16, (3, 32, 32), seed=0)[0][0])


def test_image_folder_reads_classes_and_skips_corrupt(tmp_path: Path) -> None:
    _write_images(tmp_path / "cats", 4, (200, 30, 30))
    _write_images(tmp_path / "dogs", 4, (30, 30, 200))
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "cats" / "notes.txt").write_text("ignored: not an image suffix")
    data = load_batches(tmp_path, 2, 4, (3, 8, 8), seed=0)
    assert data.info.classes == ("cats", "dogs")
    assert data.info.num_images == 9
    assert data.info.skipped == (str(Path("dogs") / "broken.png"),)
    assert "skipped 1 corrupt" in data.info.notes[0]
    x, _ = data[0]
    assert x.shape == (4, 3, 8, 8)
    # Red cats and blue dogs: after standardisation the red channel separates the labels.
    xs, ys = torch.cat([b[0] for b in data.items]), torch.cat([b[1] for b in data.items])
    assert xs[ys == 0, 0].mean() > xs[ys == 1, 0].mean()


def test_image_folder_grayscale(tmp_path: Path) -> None:
    _write_images(tmp_path / "a", 2, (10, 10, 10))
    _write_images(tmp_path / "b", 2, (240, 240, 240))
    x, _ = load_batches(tmp_path, 1, 3, (1, 6, 6), seed=0)[0]
    assert x.shape == (3, 1, 6, 6)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("file", "is not a directory"),
        ("empty", "has no images"),
        ("one-class", "has one class"),
        ("all-corrupt", "no readable image"),
    ],
)
def test_image_folder_errors(tmp_path: Path, setup: str, message: str) -> None:
    root = tmp_path / "data"
    if setup == "file":
        root.write_text("x")
    elif setup == "empty":
        (root / "cats").mkdir(parents=True)
    elif setup == "one-class":
        _write_images(root / "cats", 3, (100, 100, 100))
    elif setup == "all-corrupt":
        for cls in ("a", "b"):
            (root / cls).mkdir(parents=True)
            (root / cls / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(ResvizError, match=message) as info:
        load_batches(root, 1, 2, (3, 8, 8))
    assert "\n" not in str(info.value)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ResvizError, match="at least 1"):
        load_batches("synthetic", 1, 0, (3, 8, 8))
    with pytest.raises(ResvizError, match="below 1"):
        load_batches("synthetic", 1, 2, (3, -8, 8))
    _write_images(tmp_path / "a", 1, (0, 0, 0))
    _write_images(tmp_path / "b", 1, (255, 255, 255))
    with pytest.raises(ResvizError, match="1 or 3 channels"):
        load_batches(tmp_path, 1, 2, (4, 8, 8))
    with pytest.raises(ResvizError, match="2 classes but a compared model has only 1"):
        load_batches(tmp_path, 1, 2, (3, 8, 8), max_classes=1)


def test_batches_are_made_when_asked_for_so_many_steps_hold_one_batch() -> None:
    """A million ImageNet-sized batches would need terabytes if drawn up front; each is made on
    demand, the same tensor every time it is asked for."""
    data = load_batches("synthetic", 10**6, 8, (3, 224, 224), seed=0)
    assert len(data) == 10**6
    x, y = data[123_456]
    again, y2 = data[123_456]
    assert torch.equal(x, again) and torch.equal(y, y2) and x.shape == (8, 3, 224, 224)
    assert not torch.equal(x, data[123_457][0])


def test_a_real_data_set_cycles_through_every_image_once_per_pass() -> None:
    pytest.importorskip("sklearn")
    data = load_batches("digits", 2 * 1797, 1, (1, 8, 8), seed=0)  # two passes, one image a batch
    first = torch.stack([data[i][1] for i in range(1797)]).flatten()
    counts = torch.bincount(first, minlength=10)
    full = torch.bincount(torch.stack([data[i][1] for i in range(1797, 2 * 1797)]).flatten(), minlength=10)
    assert torch.equal(counts, full) and int(counts.sum()) == 1797  # each pass sees every image once
    assert not torch.equal(data[0][0], data[1797][0]) or not torch.equal(data[1][0], data[1798][0])


def test_data_bytes_count_what_the_data_holds() -> None:
    from resviz.studies.data import DIGITS_IMAGES, data_bytes

    assert data_bytes("synthetic", 1000, 4, (3, 8, 8)) == 10 * 4 * 3 * 64  # the class templates
    assert data_bytes("digits", 1, 1, (3, 8, 8)) == 3 * DIGITS_IMAGES * 4 * 3 * 64
