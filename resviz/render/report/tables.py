"""The report's tables as rows of strings, shared by the HTML and Markdown renderers.

Both renderers print the same cells, formatted once here, so a number in either report is the
JSON's value at four significant digits (:func:`resviz.render.format.num`), and
integers are exact.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from resviz.records import Comparison, ModelResult, Recipe, Settings, Spread, TrainingStatus, shape_str
from resviz.records.comparison import TAIL_STEPS
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


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal (``0.0835`` -> ``8.4 %``); ``-`` for none."""
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f} %"


def _error_text(s: Spread) -> str:
    """A held-out error over seeds: the value for one seed, else mean and range."""
    if s.n < 2:
        return pct(s.mean)
    return f"{pct(s.mean)} (range {pct(s.low)} to {pct(s.high)} over {s.n} seeds)"


def _pair(a: ModelResult, b: ModelResult) -> tuple[Spread, Spread] | None:
    ea, eb = a.held_out_error, b.held_out_error
    return (ea, eb) if ea is not None and eb is not None else None


def _numbers(ea: Spread, eb: Spread) -> str:
    return f"held-out error {_error_text(ea)} vs {_error_text(eb)}"


def _overlap_note(ea: Spread, eb: Spread) -> str:
    return "; the two ranges overlap across seeds" if ea.n > 1 and eb.n > 1 and ea.overlaps(eb) else ""


def _degradation(deep: ModelResult, shallow: ModelResult) -> str | None:
    """Plain nets of two depths: He et al. 2015's degradation problem is the deeper one doing worse."""
    pair = _pair(deep, shallow)
    if pair is None:
        return None
    ed, es = pair
    nums = _numbers(ed, es) + _overlap_note(ed, es)
    if ed.mean > es.mean:
        return f"{deep.name} is worse than {shallow.name} (the degradation problem): {nums}"
    return f"{deep.name} is not worse than {shallow.name} (no degradation seen): {nums}"


def _equal_depth(res: ModelResult, plain: ModelResult) -> str | None:
    """A residual net against the plain net of its depth."""
    pair = _pair(res, plain)
    if pair is None:
        return None
    er, ep = pair
    nums = _numbers(er, ep) + _overlap_note(er, ep)
    if er.mean < ep.mean:
        return f"{res.name} beats {plain.name} at equal depth: {nums}"
    return f"{res.name} does not beat {plain.name} at equal depth: {nums}"


def _deeper_residual(deep: ModelResult, shallow: ModelResult) -> str | None:
    """Two residual nets: deeper is better in the paper (Table 6), but on a short run the difference
    is told only when the seeds' ranges do not overlap; with one seed there is no range."""
    pair = _pair(deep, shallow)
    if pair is None:
        return None
    ed, es = pair
    nums = _numbers(ed, es)
    if ed.n < 2 or es.n < 2:
        return f"{deep.name} vs {shallow.name}: too short to tell with one seed ({nums})"
    if ed.overlaps(es):
        return f"{deep.name} vs {shallow.name}: too short to tell, the difference is within the seeds' spread ({nums})"
    if ed.mean < es.mean:
        return f"{deep.name} beats {shallow.name}: deeper is better with shortcuts ({nums})"
    return f"{deep.name} is worse than {shallow.name} even with shortcuts ({nums})"


def _extremes(models: list[ModelResult]) -> tuple[ModelResult, ModelResult] | None:
    """The deepest and the shallowest of ``models`` (the first of each depth), if depths differ."""
    if len({m.depth for m in models}) < 2:
        return None
    return max(models, key=lambda m: m.depth), min(models, key=lambda m: m.depth)


def recipe_headline(c: Comparison) -> list[str]:
    """What the held-out numbers reproduce of He et al. 2015 (arXiv:1512.03385, Sec. 4.1-4.2), one
    sentence per finding, computed from the records: the deepest plain net against the shallowest
    (the degradation problem), each residual net against the plain net of its depth, and the
    deepest residual net against the shallowest ("too short to tell" with one seed or when the
    seeds' ranges of final held-out error overlap). Empty without held-out results."""
    ranked = [m for m in c.models if m.held_out_error is not None]
    plain = [m for m in ranked if not m.has_skips]
    residual = [m for m in ranked if m.has_skips]
    out: list[str | None] = []
    ends = _extremes(plain)
    if ends:
        out.append(_degradation(*ends))
    for r in residual:
        twin = next((p for p in plain if p.depth == r.depth), None)
        if twin is not None:
            out.append(_equal_depth(r, twin))
    ends = _extremes(residual)
    if ends:
        out.append(_deeper_residual(*ends))
    return [line for line in out if line]


def findings_context(c: Comparison) -> str | None:
    """What the findings rest on, in one sentence: the held-out images, the steps and rates, the
    seeds. ``None`` without held-out results."""
    s, d = c.settings, c.settings.data
    if not d.held_out_images or not any(m.held_out_error is not None for m in c.models):
        return None
    rate = f"lr {num(s.lr)}"
    if s.warmup_steps:
        plural = "s" if s.warmup_steps > 1 else ""
        rate = f"lr {num(s.warmup_lr)} for {s.warmup_steps} warm-up step{plural}, then {num(s.lr)}"
    seeds = "one seed" if len(s.seeds) < 2 else f"{len(s.seeds)} seeds ({', '.join(map(str, s.seeds))})"
    return (
        f"Held-out error after {s.steps_done} steps of batch {s.batch} ({rate}), on the {num(d.held_out_images)} "
        f"held-out images of {d.kind}, never trained on ({num(d.train_images)} for training), {seeds}: a short "
        f"run, far from the paper's 64k iterations."
    )


def held_out_table(c: Comparison) -> Table:
    """Per model, the end of training over the seeds: final held-out error and loss (mean, then the
    lowest and highest seed, and the standard deviation), and the training loss and error of the
    first seed over its last :data:`TAIL_STEPS` steps. No rows without a held-out evaluation."""
    header = ["model", "seeds", "held-out error", "error range", "error std", "held-out loss", "loss range",
              f"train loss (last {TAIL_STEPS})", f"train error (last {TAIL_STEPS})", "status"]
    rows = []
    for m in c.models:
        err, loss = m.held_out_error, m.held_out_loss
        if err is None or loss is None:
            continue
        first = m.seeds[0]
        rows.append([
            m.name, num(err.n), pct(err.mean), f"{pct(err.low)} to {pct(err.high)}", pct(err.std),
            num(loss.mean), f"{num(loss.low)} to {num(loss.high)}", num(first.train_loss), pct(first.train_error),
            status_text(m),
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


def _rate(s: Settings) -> str:
    text = num(s.lr) + " (SGD, momentum 0.9, weight decay 1e-4"
    if s.warmup_steps:
        text += f"; warm-up: steps 1 to {s.warmup_steps} at {num(s.warmup_lr)}"
    return text + ")"


def _recipe_rows(s: Settings) -> list[tuple[str, str]]:
    if s.recipe is not Recipe.PAPER:
        return []
    rows = [("recipe", "paper: He et al. 2015 (arXiv:1512.03385), Sec. 4.2 CIFAR recipe adapted to the digits "
             "(short run, no augmentation, no rate decay)")]
    if s.overrides:
        rows.append(("overridden by the user", ", ".join(s.overrides)))
    return rows


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
        ("learning rate", _rate(s)),
        ("seed", str(s.seed) if len(s.seeds) < 2 else f"{', '.join(map(str, s.seeds))} ({len(s.seeds)} seeds; "
         f"the curves and diagrams are seed {s.seed}'s)"),
        ("device", s.device),
        ("data", data),
    ]
    rows[1:1] = _recipe_rows(s)
    if d.held_out_images:
        rows.append(("held-out split", f"{num(d.train_images)} training images, {num(d.held_out_images)} held out "
                     f"(stratified by class, the same for every seed, never trained on); evaluated in eval mode "
                     f"every {s.eval_every} steps and after the last"))
    if d.skipped:
        shown = ", ".join(d.skipped[:10]) + (" ..." if len(d.skipped) > 10 else "")
        rows.append(("skipped images", f"{len(d.skipped)}: {shown}"))
    rows += [(k if k == "platform" else f"{k} version", v) for k, v in s.versions.items()]
    rows.append(("command", s.command or "(Python API)"))
    return ["setting", "value"], [list(r) for r in rows]


__all__ = [
    "Note", "Table", "block_table", "findings_context", "headline_sentence", "headline_table", "held_out_table",
    "notes", "num", "pct", "recipe_headline", "settings_table", "stage_table", "status_text", "training_table",
]
