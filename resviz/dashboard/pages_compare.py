"""The Compare page: two or more models side by side, and the self-contained HTML report.

A comparison trains every model for a few steps, which takes seconds to minutes, so it runs only
when the button is pressed, shows a progress bar per model and step, and is remembered for the
session (the settings of the last run live in session state; the results in ``st.cache_data``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from resviz.dashboard import compute
from resviz.dashboard.state import CUSTOM, ViewState, model_label
from resviz.errors import ResvizError
from resviz.extras import missing
from resviz.records import Comparison
from resviz.spec import ResNetSpec
from resviz.zoo import list_models, skip_twin

try:
    import streamlit as st
except ImportError as exc:  # Streamlit comes with the 'dashboard' extra
    raise missing(exc, "dashboard", "the dashboard") from None

RUN_KEY = "compare_run"

if TYPE_CHECKING:
    import pandas as pd


def _defaults(view: ViewState, spec: ResNetSpec | None, launch: Sequence[str] = ()) -> list[str]:
    """The current preset and its plain twin: the comparison He et al. 2015 (Fig. 4) make; a
    launch-declared model beside ResNet-20 (it has no plain twin)."""
    if view.model in launch:
        return [view.model, "resnet20"]
    names = list_models(include_plain=True)
    if spec is not None and view.model != CUSTOM and spec.name in names:
        twin = spec.plain().name if spec.has_skips else skip_twin(spec.name)
        if twin is not None and twin != spec.name and twin in names:
            return [spec.name, twin]
    return ["resnet20", "plain20"]


def compare_page(view: ViewState, spec: ResNetSpec | None, launch: Sequence[str] = ()) -> None:
    """Pick models (the presets and the launch-declared ones), run the comparison on demand, show
    its table and offer the report."""
    names = [*list_models(include_plain=True), *launch]
    picked = st.multiselect("Models to compare", names, default=_defaults(view, spec, launch), key="cmp_models",
                            format_func=lambda m: model_label(m, launch))
    c1, c2, c3 = st.columns(3)
    steps = int(c1.number_input("Training steps", 0, 500, 5, key="cmp_steps"))
    batch = int(c2.number_input("Batch", 2, 256, 8, key="cmp_batch"))
    side = int(c3.number_input("Input size", 8, 512, 32, key="cmp_size"))
    if st.button("Run comparison", type="primary", key="cmp_run", disabled=len(picked) < 2):
        st.session_state[RUN_KEY] = (tuple(picked), steps, batch, (3, side, side), int(view.seed),
                                     view.device)
    if len(picked) < 2:
        st.info("Pick at least two models.")
    args = st.session_state.get(RUN_KEY)
    if not args:
        return
    bar = st.progress(0.0, text="starting...")

    def progress(done: int, total: int, label: str) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=label)

    try:
        names, steps, batch, size, seed, device = args
        result = compute.comparison(names, steps, batch, size, seed, device, progress=progress)
    except ResvizError as exc:
        bar.empty()
        st.error(str(exc))
        return
    bar.empty()
    show_result(result)


def result_frame(result: Comparison) -> pd.DataFrame:
    """One row per model: the headline gradient ratio and the numbers behind it."""
    import pandas as pd

    rows = []
    for m in result.models:
        rows.append({
            "model": m.name, "shortcuts": m.has_skips, "depth": m.depth, "params": m.params,
            "MACs": m.macs, "grad first / last block": m.headline, "grad first": m.grad_first,
            "grad last": m.grad_last, "loss at init": m.loss_init,
            "final loss": m.training.final_loss if m.training else None, "status": str(m.status),
        })
    return pd.DataFrame(rows)


def show_result(shown: compute.ShownComparison) -> None:
    s = shown.result.settings
    st.caption(f"{', '.join(s.models)}: {s.steps_done} training steps, batch {s.batch}, seed {s.seed}, "
               f"on {s.device}.")
    st.dataframe(result_frame(shown.result), hide_index=True, width="stretch")
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("Download HTML report", shown.html, file_name="resviz-comparison.html",
                       mime="text/html", key="cmp_html", on_click="ignore")
    c2.download_button("Download JSON", lambda: shown.result.to_json(indent=2),
                       file_name="resviz-comparison.json", mime="application/json", key="cmp_json",
                       on_click="ignore")
    if st.toggle("Show the report here", key="cmp_show"):
        import streamlit.components.v1 as components

        components.html(shown.html, height=900, scrolling=True)
