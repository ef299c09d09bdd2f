"""The Studies page: one of the four science studies (signal, shatter, paths, lesion) on the chosen
models and their twins, with its findings, figures and the self-contained report.

A study runs real passes (and, for the lesion study, a short training), from a second to minutes,
so it runs only when the button is pressed, with a progress bar; the settings of the last run live
in session state and the finished result (the plain record and its page's HTML) in
``st.cache_data``, so a rerun or another session asking the same study costs a lookup. Every
decision (targets, twins, sizes, bounds, memory) is :func:`resviz.api.study`'s.
Papers: Brock et al. 2021 (arXiv:2101.08692), Balduzzi et al. 2017 (arXiv:1702.08591), Veit et al.
2016 (arXiv:1605.06431).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from resviz.api.studying import LESION_STEPS, PATHS_SAMPLES, SHATTER_POINTS
from resviz.dashboard.state import CUSTOM, ViewState, is_yours, model_label
from resviz.errors import ResvizError
from resviz.extras import missing
from resviz.records import StudyKind, StudyResult
from resviz.spec import ResNetSpec
from resviz.zoo import list_models

try:
    import streamlit as st
except ImportError as exc:  # Streamlit comes with the 'dashboard' extra
    raise missing(exc, "dashboard", "the dashboard") from None

RUN_KEY = "study_run"

#: What each study's count input sets, its range and default (the api's defaults and bounds decide;
#: these ranges keep the widget small). The count goes to the study only when the user changes it,
#: so the api's own default applies otherwise (no training steps for a model resviz did not build).
COUNTS: dict[StudyKind, tuple[str, str, int, int, int]] = {
    StudyKind.SHATTER: ("points", "Points on the line", 3, 4096, SHATTER_POINTS),
    StudyKind.PATHS: ("samples", "Subsets per path length", 1, 200, PATHS_SAMPLES),
    StudyKind.LESION: ("steps", "Training steps", 0, 2000, LESION_STEPS),
}

HELP = {
    StudyKind.SIGNAL: "Signal Propagation Plots at initialisation (Brock et al. 2021): input NxCxHxW.",
    StudyKind.SHATTER: "Shattered gradients along a line of inputs (Balduzzi et al. 2017): input CxHxW.",
    StudyKind.PATHS: "Gradient per path length (Veit et al. 2016, Sec. 5): input NxCxHxW, residual nets only.",
    StudyKind.LESION: "Blocks removed at test time after a short training on digits (Veit et al. 2016, Sec. 4): "
                      "input CxHxW (the digits are 8x8).",
}


@dataclass(frozen=True)
class ShownStudy:
    """A finished study as the page keeps it: the record and its report page's HTML."""

    html: str
    result: StudyResult


@st.cache_data(show_spinner=False, max_entries=8)
def _stored(key: tuple[Any, ...], _value: ShownStudy | None = None) -> ShownStudy:
    """The cache of finished studies: a miss raises (and raising stores nothing). The study runs
    outside, so its progress bar is not recorded by ``st.cache_data`` and replayed on later hits."""
    if _value is None:
        raise KeyError(key)
    return _value


def run_study(key: tuple[Any, ...], progress: Callable[[int, int, str], None] | None = None) -> ShownStudy:
    """The study ``key`` = (kind, models, input, seed, device, twin, count) from the cache, or run now."""
    try:
        return _stored(key)
    except KeyError:
        pass
    from resviz.api import study
    from resviz.render.report.study_html import render_study_html

    kind, models, size, seed, device, twin, count = key
    extra: dict[str, Any] = {}
    if kind in COUNTS and count is not None and count != COUNTS[kind][-1]:
        extra[COUNTS[kind][0]] = count
    result = study(kind, list(models), input_size=size or None, seed=seed, device=device, twin=twin,
                   progress=progress, **extra)
    return _stored(key, ShownStudy(render_study_html(result), result))


def _default_models(view: ViewState, spec: ResNetSpec | None, launch: Sequence[str] = ()) -> list[str]:
    """The model shown in the sidebar when it is a preset or launch-declared, else ResNet-20."""
    if is_yours(view.model, launch):
        return [view.model]
    names = list_models(include_plain=True)
    if spec is not None and view.model != CUSTOM and spec.name in names:
        return [spec.name]
    return ["resnet20"]


def studies_page(view: ViewState, spec: ResNetSpec | None, launch: Sequence[str] = ()) -> None:
    """Pick a study and models (presets and launch-declared ones, which :func:`resviz.api.study`
    builds from their factory strings), run it on demand, show findings and figures, offer the report."""
    c1, c2 = st.columns([1, 3])
    kind = StudyKind(c1.selectbox("Study", [k.value for k in StudyKind], key="study_kind"))
    picked = c2.multiselect("Models", [*list_models(include_plain=True), *launch],
                            default=_default_models(view, spec, launch), key="study_models",
                            format_func=lambda m: model_label(m, launch))
    st.caption(HELP[kind])
    c1, c2, c3 = st.columns(3)
    size = c1.text_input("Input size", "", key="study_input", help="empty: the study's default")
    count = None
    if kind in COUNTS:
        _, label, low, high, default = COUNTS[kind]
        count = int(c2.number_input(label, low, high, default, key=f"study_{COUNTS[kind][0]}"))
    twin = c3.checkbox("Add plain twins", True, key="study_twin")
    if st.button("Run study", type="primary", key="study_go", disabled=not picked):
        st.session_state[RUN_KEY] = (str(kind), tuple(picked), size.strip(), int(view.seed), view.device, twin,
                                     count)
    if not picked:
        st.info("Pick at least one model.")
    key = st.session_state.get(RUN_KEY)
    if not key:
        return
    bar = st.progress(0.0, text="starting...")

    def progress(done: int, total: int, label: str) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=label)

    try:
        shown = run_study(key, progress)
    except ResvizError as exc:
        bar.empty()
        st.error(str(exc))
        return
    bar.empty()
    show_study(shown)


def show_study(shown: ShownStudy) -> None:
    """Findings, notes, figures and the downloads of a finished study."""
    from resviz.render.report.study_html import study_figures, study_findings

    r = shown.result
    st.caption(f"{r.kind} study of {', '.join(r.models)}: input {r.settings.get('input', '')}, seed "
               f"{r.settings.get('seed', '')}, on {r.settings.get('device', '')}.")
    st.markdown("\n".join(f"- {line}" for line in study_findings(r)))
    for note in r.notes:
        st.info(note)
    for i, fig in enumerate(study_figures(r)):
        st.plotly_chart(fig, key=f"study_fig_{i}")
    if r.command:
        st.code(r.command, language="bash")
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("Download HTML report", shown.html, file_name=f"resviz-{r.kind}.html", mime="text/html",
                       key="study_html", on_click="ignore")
    c2.download_button("Download JSON", lambda: r.to_json(indent=1), file_name=f"resviz-{r.kind}.json",
                       mime="application/json", key="study_json", on_click="ignore")


__all__ = ["COUNTS", "ShownStudy", "run_study", "show_study", "studies_page"]
