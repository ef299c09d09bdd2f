"""The largest value resviz accepts for every number a user can type, each with its reason.

Every surface checks these before any work, so a typo (``layers=1000000``, a seed with 30 digits,
a 100000-pixel side) is refused in one line instead of running for minutes, exhausting memory or
overflowing a 64-bit integer inside PyTorch. Each bound leaves every published residual network
accepted with room to spare, and keeps the static summary of anything accepted to seconds:
its cost grows with the number of layers, not with widths or input sizes (it runs on the meta
device), so the number of blocks is the bound that decides its time.

* :data:`MAX_BLOCKS`: blocks in all stages together. The deepest published ResNets are
  ResNet-1202 (He et al. 2015, Sec. 4.2: 600 basic blocks) and the pre-activation ResNet-1001
  (He et al. 2016: 333 bottleneck blocks). The bound keeps the static summary of the largest
  accepted network, printing its table included, within the ten-second goal (bench/RESULTS.md,
  Bounds on what users type).
* :data:`MAX_STAGES`: stages. Papers use 3 (CIFAR) or 4 (ImageNet); every stage after the first
  halves the side, so beyond 16 stages even a :data:`MAX_SIDE` input is down to one pixel.
* :data:`MAX_CHANNELS`: channels of any layer (a stage's width times the block's expansion, a
  bottleneck's inner width, ``stem_width``, ``in_channels``) and so also any ``width``,
  ``groups`` or ``width_per_group``. The widest presets (Wide ResNet-101-2, ResNeXt-101 32x8d)
  reach 2048 channels; this is 16 times that.
* :data:`MAX_CLASSES`: ``num_classes``. ImageNet-21k has 21,843 classes; a million covers the
  largest classification heads in use.
* :data:`MAX_SIDE`, :data:`MAX_BATCH`: any one input dimension. 1024x1024 images and batches
  of a few thousand are real; 65536 is 64 times either.
* :data:`MAX_INPUT_ELEMENTS`: the input tensor's elements (N x C x H x W), 2**32 of 4 bytes each
  in float32:
  more than any accelerator can trace, and small enough that every activation count and MAC
  count downstream stays far inside a 64-bit integer.
* :data:`MAX_SEED`: seeds are 0 to 2**63 - 1, what every PyTorch generator (CPU and CUDA) and
  NumPy take as they are; PyTorch maps a negative seed onto a large one, so two different seeds
  would give the same run.
* :data:`MAX_STEPS`: training steps (and ``every``) of a comparison, a study at CIFAR scale:
  He et al. 2015 train CIFAR for 64k steps.
* :data:`MAX_DEPTH`: ``--depth`` of a folded layer table or diagram. resviz's own models nest
  four levels; the deepest module trees of timm and HuggingFace models a few dozen.
* :data:`MAX_NAME_CHARS`: a spec's ``name``, a label in tables, titles and reports.
* :data:`MAX_SPEC_BYTES`: a spec file's size. A spec is a dozen fields (the longest preset's is
  a few hundred bytes); a larger file is not a spec and is not read whole.
* :data:`MAX_SERIES_BYTES`: a monitor series file's size (``resviz report-series``). A snapshot of
  ResNet-110 (54 blocks, 329 parameters) takes 52 kB of JSON (65 kB as ``resviz.save_series``
  indents it), so this holds some 8,000 snapshots; parsing a file takes several times its size in
  memory, and a larger file is not read at all.
"""

from __future__ import annotations

import math

from resviz.errors import ResvizError, clip, quote

MAX_BLOCKS = 700
MAX_STAGES = 16
MAX_CHANNELS = 32768
MAX_CLASSES = 1_000_000
MAX_SIDE = 65536
MAX_BATCH = 65536
MAX_INPUT_ELEMENTS = 2**32
MAX_SEED = 2**63 - 1
MAX_STEPS = 100_000
MAX_DEPTH = 64
MAX_SPEC_BYTES = 64 * 1024
MAX_SERIES_BYTES = 512 * 1024 * 1024
MAX_NAME_CHARS = 200

#: Why each bound is where it is, in the few words a refusal quotes.
BLOCKS_WHY = "ResNet-1202 has 600"
STAGES_WHY = "the papers use 3 or 4"
CHANNELS_WHY = "the widest presets have 2048"
CLASSES_WHY = "ImageNet-21k has 21843"
SIDE_WHY = "64 times a 1024-pixel image"
BATCH_WHY = "a batch beyond that is many batches"
ELEMENTS_WHY = "2**32 values of 4 bytes each in float32"
SEED_WHY = "2**63 - 1, the largest seed every generator takes"
STEPS_WHY = "He et al. 2015 train CIFAR for 64k"
NAME_WHY = "a name is a label in tables and titles"
DEPTH_WHY = "module trees nest a few dozen levels at most"


def bounded(value: object, what: str, high: int, why: str, low: int = 1) -> int:
    """``value`` when it is an integer from ``low`` to ``high``; otherwise a one-line
    :class:`ResvizError` that names the bound and ``why`` it is there. Booleans and integral
    floats are refused too: a spec's ``true`` or ``2.0`` is a typo, not a count."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ResvizError(f"{what} = {quote(value)}: must be an integer")
    if value < low:
        raise ResvizError(f"{what} = {clip(value)}: must be at least {low}")
    if value > high:
        raise ResvizError(f"{what} = {clip(value)}: more than the {high} resviz accepts ({why})")
    return value


def positive(value: object, what: str, high: float = math.inf) -> float:
    """``value`` when it is a finite number above 0 and at most ``high`` (a learning rate, a share);
    otherwise a one-line :class:`ResvizError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= high \
            or not math.isfinite(value):
        bound = "a positive number" if high == math.inf else f"a number in (0, {high:g}]"
        raise ResvizError(f"{what} must be {bound}, got {clip(repr(value))}")
    return float(value)


def check_seed(seed: object) -> int:
    """A seed from 0 to :data:`MAX_SEED`, else a one-line :class:`ResvizError`."""
    return bounded(seed, "seed", MAX_SEED, SEED_WHY, low=0)

__all__ = [
    "MAX_BATCH", "MAX_BLOCKS", "MAX_CHANNELS", "MAX_CLASSES", "MAX_DEPTH", "MAX_INPUT_ELEMENTS",
    "MAX_NAME_CHARS", "MAX_SEED", "MAX_SIDE", "MAX_SPEC_BYTES", "MAX_STAGES", "MAX_STEPS", "bounded", "check_seed",
    "positive",
]
