"""The page of one science study (:class:`~resviz.records.StudyResult`): one self-contained HTML
file, and the JSON with every number behind it.

The page shares the comparison report's stylesheet and inlines Plotly's JavaScript once
(:mod:`resviz.render.report.html`), so it opens offline. Order: the paper and what it found, the
setup here and where it differs from the paper's (stated in words, from the settings), the findings
sentences computed from the measured numbers (:mod:`resviz.render.report.study_signal`,
:mod:`resviz.render.report.study_paths`), the figures, then the settings and the command line that
run the study again. Papers: Brock, De, Smith 2021 (arXiv:2101.08692); Balduzzi et al. 2017
(arXiv:1702.08591); Veit, Wilber, Belongie 2016 (arXiv:1605.06431).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from resviz import __version__
from resviz.records import StudyKind, StudyResult
from resviz.records.paths import LesionStudy, PathsStudy
from resviz.records.signal import ShatterStudy, SignalStudy
from resviz.render.report.page import figures_html, page, table_html
from resviz.render.report.study_paths import lesion_figures, lesion_findings, paths_figures, paths_findings
from resviz.render.report.study_signal import shatter_figures, shatter_findings, signal_figures, signal_findings

TITLES = {
    StudyKind.SIGNAL: "Signal propagation at initialisation",
    StudyKind.SHATTER: "Shattered gradients",
    StudyKind.PATHS: "Residual networks as ensembles of paths: gradient per path length",
    StudyKind.LESION: "Lesion study: residual blocks removed at test time",
}

PAPERS = {
    StudyKind.SIGNAL: (
        "Brock, De and Smith 2021 (arXiv:2101.08692, Sec. 3; after De and Smith 2020, arXiv:2002.10444) plot, "
        "block by block, the average squared channel mean and the average channel variance of the activations of "
        "a deep normalised pre-activation ResNet at initialisation fed a batch of unit-Gaussian inputs (Signal "
        "Propagation Plots). Their reading: the variance grows about linearly with depth inside a stage, since "
        "each residual branch adds about unit variance to an unchanged skip, and falls back where a projection "
        "shortcut starts the next stage."
    ),
    StudyKind.SHATTER: (
        "Balduzzi et al. 2017 (arXiv:1702.08591, Fig. 1-2, Sec. 3) follow the gradient of a network's output "
        "with respect to its input along a line of inputs. In deep plain rectifier networks it becomes like "
        "white noise (correlation between nearby inputs decaying as 2^-depth); with skip connections it stays "
        "correlated much longer (decaying as 1/sqrt(depth))."
    ),
    StudyKind.PATHS: (
        "Veit, Wilber and Belongie 2016 (arXiv:1605.06431, Sec. 5, Fig. 6) unroll a ResNet of n blocks into 2^n "
        "paths, C(n, k) of length k, and measure the gradient reaching the input through paths of each length in "
        "a trained ResNet-110 on CIFAR-10: it falls fast with length, so almost all gradient comes from short "
        "paths (they read an effective range of 5-17 blocks off their figure, out of 54)."
    ),
    StudyKind.LESION: (
        "Veit, Wilber and Belongie 2016 (arXiv:1605.06431, Sec. 4, Fig. 3-5) delete residual blocks of a trained "
        "ResNet-110 on CIFAR-10 at test time: removing one block barely changes the error, except at a "
        "downsampling block; removing a layer of a plain VGG-style network breaks it; removing growing random "
        "sets of blocks raises the error smoothly, like an ensemble losing members."
    ),
}


def _signal_setup(r: StudyResult) -> tuple[str, list[str]]:
    s = r.settings
    setup = (f"Here: {s.get('models', '')} on one seeded N(0, 1) batch of {s.get('input', '')} (N x C x H x W), "
             f"weights: {s.get('weights', '')}, one forward pass without gradients.")
    return setup, [
        "The models are resviz's networks as given (CIFAR-sized presets unless named otherwise), not the paper's "
        "ImageNet ResNet-V2-600.",
        "Post-activation networks and plain twins are measured too: the paper's prediction is for normalised "
        "pre-activation networks.",
        "BatchNorm normalises with the batch's own statistics (as in the paper's plots at initialisation); every "
        "other module runs in eval mode.",
    ]


def _shatter_setup(r: StudyResult) -> tuple[str, list[str]]:
    s = r.settings
    setup = (f"Here: {s.get('models', '')}, {s.get('points', '')} points on the line between two seeded N(0, 1) "
             f"images of {s.get('input', '')}; the gradient of one logit with respect to each point, weights: "
             f"{s.get('weights', '')}.")
    return setup, [
        "The paper's networks are fully connected rectifier nets on a one-dimensional input; here they are "
        "convolutional ResNets and their plain twins on images.",
        "With BatchNorm using batch statistics the points form one batch; the gradient is taken with those "
        "statistics held fixed (frozen-stats) unless the settings say otherwise. BatchNorm with running "
        "statistics is measured too.",
    ]


def _paths_setup(r: StudyResult) -> tuple[str, list[str]]:
    s = r.settings
    setup = (f"Here: {s.get('models', '')}, input {s.get('input', '')}, {s.get('samples', '')} random subsets of "
             f"blocks per path length, weights: {s.get('weights', '')}.")
    diffs = ["Gradient norms per length are means over sampled subsets of blocks (standard errors on the figure), "
             "not every path."]
    if not s.get("weights", "").startswith(("checkpoint", "trained")):
        diffs.insert(0, "The paper measures a trained network on CIFAR-10 images; here the weights are as stated "
                        "above and the loss is cross entropy against random labels on N(0, 1) inputs.")
    return setup, diffs


def _lesion_setup(r: StudyResult) -> tuple[str, list[str]]:
    s = r.settings
    setup = (f"Here: {s.get('models', '')}, weights: {s.get('weights', '')} (batch {s.get('batch', '')}, images "
             f"{s.get('input', '')}), scored on {s.get('held_out', '')} held-out images of {s.get('data', '')}.")
    return setup, [
        "The paper trains ResNet-110 on CIFAR-10 to convergence; here the networks are trained briefly on the "
        "hand-written digits at their own 8x8 resolution unless the settings say otherwise, so a plain twin may "
        "be barely trained.",
        "A removed block passes on what its shortcut gives (the zero-pad or projection shortcut of a "
        "downsampling block included); a plain block is replaced by the identity where it keeps the shape.",
    ]


SETUPS: dict[StudyKind, Callable[[StudyResult], tuple[str, list[str]]]] = {
    StudyKind.SIGNAL: _signal_setup, StudyKind.SHATTER: _shatter_setup,
    StudyKind.PATHS: _paths_setup, StudyKind.LESION: _lesion_setup,
}


#: The findings of each kind of record, and the figures of each kind drawn one record at a time (the
#: lesion study draws every model's record in one set of figures).
FINDINGS: dict[type, Callable[[Any], list[str]]] = {
    SignalStudy: signal_findings, ShatterStudy: shatter_findings, PathsStudy: paths_findings,
    LesionStudy: lesion_findings,
}
FIGURES: dict[type, Callable[[Any], list[Any]]] = {
    SignalStudy: signal_figures, ShatterStudy: shatter_figures, PathsStudy: paths_figures,
}


def study_findings(result: StudyResult) -> list[str]:
    """The findings sentences of every record of ``result``, computed from its numbers."""
    return [f for r in result.records for f in FINDINGS[type(r)](r)]


def study_figures(result: StudyResult) -> list[object]:
    """The Plotly figures of ``result``: one set for signal and shatter, one per model for paths,
    one set with every model for lesion (residual and plain side by side)."""
    figs: list[object] = [f for r in result.records if type(r) in FIGURES for f in FIGURES[type(r)](r)]
    lesions = [r for r in result.records if isinstance(r, LesionStudy)]
    return figs + (list(lesion_figures(*lesions)) if lesions else [])


def _figures_html(result: StudyResult) -> str:
    return figures_html((f"{result.kind}-{i}", fig) for i, fig in enumerate(study_figures(result)))


def _notes_html(result: StudyResult) -> str:
    record_notes = [n for r in result.records for n in getattr(r, "notes", ())]
    return "\n".join(f'<p class="note">{html.escape(n)}</p>' for n in (*result.notes, *record_notes))


def _command_html(result: StudyResult) -> str:
    if result.command:
        return f"<pre class=\"command\">{html.escape(result.command)}</pre>"
    return ('<p class="note">No command line runs this study again (a module or a Python-only option was '
            "given): the settings below say how it was run.</p>")


def _settings_html(result: StudyResult) -> str:

    rows = [[k, v] for k, v in result.settings.items() if k != "command"]
    return table_html((["setting", "value"], rows), cls="settings")


def render_study_html(result: StudyResult) -> str:
    """The full page of ``result``."""

    setup, diffs = SETUPS[result.kind](result)
    title = f"{TITLES[result.kind]}: {', '.join(result.models)}"
    values = {
        "paper": html.escape(PAPERS[result.kind]),
        "setup": html.escape(setup), "differences": "\n".join(f"<li>{html.escape(d)}</li>" for d in diffs),
        "findings": "\n".join(f"<li>{html.escape(f)}</li>" for f in study_findings(result)),
        "notes": _notes_html(result), "figures": _figures_html(result), "command": _command_html(result),
        "settings_table": _settings_html(result),
    }
    return page("study.html", values, title, __version__)


__all__ = ["PAPERS", "SETUPS", "TITLES", "render_study_html", "study_figures", "study_findings"]
