"""The report's tables as rows of strings, shared by the HTML and Markdown renderers.

Both renderers print the same cells, formatted once here, so a number in either report is the
JSON's value at four significant digits (:func:`resviz.render.format.num`), and
integers are exact.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from resviz.records import Comparison, ModelResult, TrainingStatus, shape_str
from resviz.render.format import num

Table = tuple[list[str], list[list[str]]]


def status_text(m: ModelResult) -> str:
    """How the model's run ended, in a few words: init only, trained, stopped by NaN, interrupted."""
    run = m.training
    if run is None:
        return "init only"
    if run.status == TrainingStatus.NAN:
        return f"stopped: loss NaN at step {len(run.losses)}"
    if run.status == TrainingStatus.INTERRUPTED:
        return f"interrupted after {run.steps_done} steps"
    return f"trained {run.steps_done} steps"


def headline_sentence(m: ModelResult) -> str:
    """The one number per model, in words: how the first block's gradient compares to the last's."""
    h = m.headline
    if not math.isfinite(h):
        return f"{m.name}: no finite gradient ratio (first block {num(m.grad_first)}, last {num(m.grad_last)})"
    word = "larger" if h >= 1 else "smaller"
    return (
        f"{m.name}: the gradient reaching the first block is {num(h)} times the gradient at the last "
        f"block ({word} at the input end)"
    )


def headline_table(c: Comparison) -> Table:
    header = [
        "model", "skips", "depth", "params", "loss at init", "grad first block", "grad last block",
        "first / last", "final loss", "status",
    ]
    rows = []
    for m in c.models:
        final = m.training.losses[-1] if m.training and m.training.losses else None
        rows.append([
            m.name, num(m.has_skips), num(m.depth), num(m.params), num(m.loss_init), num(m.grad_first),
            num(m.grad_last), num(m.headline), num(final), status_text(m),
        ])
    return header, rows


def stage_table(m: ModelResult) -> Table:
    header = ["stage", "blocks", "grad first block", "grad last block", "first / last", "mean main / skip",
              "mean 3x3 response std"]
    rows = [
        [s.name, num(s.blocks), num(s.grad_first), num(s.grad_last), num(s.attenuation), num(s.mean_ratio),
         num(s.mean_act_std)]
        for s in m.stages
    ]
    return header, rows


def block_table(m: ModelResult) -> Table:
    header = ["#", "block", "stage", "shortcut", "grad main", "grad skip", "grad total", "main / skip",
              "main rms", "skip rms"]
    rows = [
        [num(b.depth), b.name, b.stage, b.shortcut, num(b.grad_main), num(b.grad_skip), num(b.grad_total),
         num(b.ratio), num(b.main_rms), num(b.skip_rms)]
        for b in m.blocks
    ]
    return header, rows


def training_table(c: Comparison) -> Table:
    header = ["model", "steps done", "first loss", "last loss", "lowest loss", "seconds", "status"]
    rows = []
    for m in c.models:
        run = m.training
        if run is None:
            continue
        finite = [v for v in run.losses if math.isfinite(v)]
        rows.append([
            m.name, num(run.steps_done), num(run.losses[0] if run.losses else None),
            num(run.losses[-1] if run.losses else None), num(min(finite) if finite else None),
            num(run.seconds), status_text(m),
        ])
    return header, rows


class Note(NamedTuple):
    """One remark under the headline: ``kind`` is ``nan`` or ``interrupted`` (a run that did not
    finish, with the ``subject`` it concerns) or ``data`` (a note on the batches, no subject)."""

    kind: str  # a TrainingStatus value, or "data"
    subject: str
    text: str


def notes(c: Comparison) -> list[Note]:
    """Models that stopped early, an interrupted run, then the data's notes: both reports list these."""
    out = [
        Note(m.training.status, m.name, m.training.message)
        for m in c.models if m.training is not None and m.training.status != TrainingStatus.OK
    ]
    if c.settings.interrupted:
        out.append(Note("interrupted", "The run was interrupted", "this report covers the steps done."))
    out += [Note("data", "", n) for n in c.settings.data.notes]
    return out


def settings_table(c: Comparison) -> Table:
    """How the run was made, one setting per row."""
    s = c.settings
    d = s.data
    data = f"{d.kind}: {d.source} ({d.num_classes} classes, {num(d.num_images)} images)"
    rows = [
        ("models", ", ".join(s.models)),
        ("input", shape_str(s.input_shape)),
        ("batch", num(s.batch)),
        ("steps", f"{s.steps} requested, {s.steps_done} done" + (" (interrupted)" if s.interrupted else "")),
        ("learning rate", num(s.lr) + " (SGD, momentum 0.9, weight decay 1e-4)"),
        ("seed", str(s.seed)),
        ("device", s.device),
        ("data", data),
    ]
    if d.skipped:
        shown = ", ".join(d.skipped[:10]) + (" ..." if len(d.skipped) > 10 else "")
        rows.append(("skipped images", f"{len(d.skipped)}: {shown}"))
    rows += [(k if k == "platform" else f"{k} version", v) for k, v in s.versions.items()]
    rows.append(("command", s.command or "(Python API)"))
    return ["setting", "value"], [list(r) for r in rows]


__all__ = [
    "Note", "Table", "block_table", "headline_sentence", "headline_table", "notes", "num", "settings_table",
    "stage_table", "status_text", "training_table",
]
