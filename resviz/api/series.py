"""Reading a monitored run back: a :class:`~resviz.records.MonitorSeries` JSON file, with one-line errors.

The file is what ``resviz.save_series(mon.series, path)`` or ``json.dump(mon.to_dict(), f)`` writes.
It is checked here, once, for every surface: a regular file no larger than
:data:`resviz.limits.MAX_SERIES_BYTES` (a device or a huge file is never read whole), JSON,
stamped ``kind: resviz.monitor_series``, with the fields of a series and numbers where numbers
belong. Whether a readable series can be drawn (steps, finite values) is the report's own check
(:func:`resviz.render.report.series.check_series`).
"""

from __future__ import annotations

import json
import os
from numbers import Real
from pathlib import Path
from typing import Any

from resviz import limits
from resviz.errors import ResvizError, clip, clip_path, one_line, quote
from resviz.records import MonitorSeries
from resviz.records.trace import SERIES_KIND

#: What a wrong file is told to be instead.
HOW_TO_SAVE = "save one with resviz.save_series(mon.series, path)"

#: The numeric fields of a block record, read as floats or None.
_BLOCK_NUMBERS = ("main_rms", "skip_rms", "grad_main", "grad_skip", "grad_total")


def _read_bytes(p: Path) -> bytes:
    """The file's bytes, read in one bounded call after checking it is a regular file of a size
    resviz reads."""
    shown = clip_path(p)
    try:
        if not p.is_file():
            what = "a folder" if p.is_dir() else ("not a regular file" if p.exists() else "not found")
            raise ResvizError(f"cannot read series file {shown}: {what}")
        size = p.stat().st_size
        if size > limits.MAX_SERIES_BYTES:
            raise ResvizError(f"series file {shown} has {size} bytes, more than the {limits.MAX_SERIES_BYTES} resviz "
                              "reads")
        with p.open("rb") as fh:
            raw = fh.read(limits.MAX_SERIES_BYTES + 1)
    except OSError as exc:
        raise ResvizError(f"cannot read series file {shown}: {exc.strerror or one_line(exc)}") from None
    if len(raw) > limits.MAX_SERIES_BYTES:  # grew while being read
        raise ResvizError(f"series file {shown} is larger than the {limits.MAX_SERIES_BYTES} bytes resviz reads")
    return raw


def _parse(raw: bytes, shown: str) -> dict[str, Any]:
    """The file's JSON object, stamped as a monitor series."""
    if not raw.strip():
        raise ResvizError(f"series file {shown} is empty")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ResvizError(f"series file {shown} is not JSON: {clip(one_line(exc))}") from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind != SERIES_KIND:
        held = f"kind {quote(kind)}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise ResvizError(f"series file {shown} is not a resviz monitor series ({held}): {HOW_TO_SAVE}")
    return data


def _is_number(value: object, optional: bool) -> bool:
    return (value is None and optional) or (isinstance(value, Real) and not isinstance(value, bool))


def _check_types(series: MonitorSeries, shown: str) -> None:
    """Numbers where numbers belong, and a name that fits a title: the codec reads fields as given."""
    if not isinstance(series.model, str) or len(series.model) > limits.MAX_NAME_CHARS:
        raise ResvizError(f"series file {shown}: model must be a name of at most {limits.MAX_NAME_CHARS} "
                          f"characters, got {quote(series.model)}")
    if series.every < 1:
        raise ResvizError(f"series file {shown}: every = {clip(series.every)}, must be at least 1")
    for snap in series.snapshots:
        if not _is_number(snap.loss, optional=True):
            raise ResvizError(f"series file {shown}: the loss at step {snap.step} is {quote(snap.loss)}, not a number")
        for block in snap.blocks:
            if not isinstance(block.name, str):
                raise ResvizError(f"series file {shown}: a block name at step {snap.step} is {quote(block.name)}")
            for field in _BLOCK_NUMBERS:
                value = getattr(block, field)
                if not _is_number(value, optional=field.startswith("grad")):
                    raise ResvizError(f"series file {shown}: {field} of block {clip(block.name)} at step "
                                      f"{snap.step} is {quote(value)}, not a number")


def load_series(path: str | os.PathLike[str]) -> MonitorSeries:
    """Read a :class:`MonitorSeries` JSON file, or refuse it in one line (:class:`ResvizError`)."""
    p = Path(path)
    shown = clip_path(p)
    data = _parse(_read_bytes(p), shown)
    try:
        series = MonitorSeries.from_dict(data)
    except KeyError as exc:
        raise ResvizError(f"series file {shown} lacks the field {quote(exc.args[0])}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ResvizError(f"series file {shown} is not a readable monitor series: {clip(one_line(exc))}") from None
    _check_types(series, shown)
    return series


__all__ = ["HOW_TO_SAVE", "load_series"]
