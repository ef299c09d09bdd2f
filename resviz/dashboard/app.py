"""resviz dashboard: ``resviz dashboard`` (or ``streamlit run app.py`` in a checkout).

Widgets and layout only; every computation lives in :mod:`resviz.dashboard`. The sidebar picks a
preset, a custom spec or a model declared at launch (``streamlit run app.py -- --model pkg.mod:factory``,
read from ``sys.argv`` by :func:`resviz.dashboard.state.launch_models`; never from the URL, since a
factory runs the user's code) and the run settings, the URL mirrors them, and one page is drawn per run,
so a page that needs a trace never slows down one that does not. Page modules are imported when
their page is opened; the default Architecture page needs only the summary (PyTorch on the meta
device) and the DOT source.

Streamlit runs this file in two ways. ``streamlit run app.py`` first imports it as a module to find
``app``, the ``st.App`` it serves, whose lifespan imports PyTorch before the server answers
(:mod:`resviz.dashboard.warmup`). Every browser interaction then runs it as ``__main__``, which
draws the page.
"""

from __future__ import annotations

from typing import Any

from resviz.dashboard import warmup
from resviz.extras import missing

try:
    import streamlit as st
except ImportError as exc:  # Streamlit comes with the 'dashboard' extra
    raise missing(exc, "dashboard", "the dashboard") from None

if __name__ == "__main__":  # a script run; the server's import skips these, whose caches need a session
    from resviz.dashboard import PAGES, compute, fallback, session, state
    from resviz.errors import ResvizError
    from resviz.records import shape_str


def sidebar(launch: tuple[str, ...]) -> Any:
    """The model, its architecture and the trace settings; returns the uploaded checkpoint."""
    with st.sidebar:
        st.title("resviz")
        st.selectbox("Model", state.model_choices(launch), key="model", on_change=state.apply_preset,
                     args=(st.session_state, launch), format_func=lambda m: state.model_label(m, launch),
                     help="a preset, its plain twin, a custom spec, or a model declared at launch "
                          "(--model pkg.mod:factory)")
        yours = state.is_yours(st.session_state["model"], launch)
        if yours:
            st.caption("Architecture: the model's own, as its factory builds it (the spec fields apply "
                       "to resviz's models only).")
        else:
            architecture_fields()
        st.number_input("Input size (pixels)", *state.LIMITS["input"], key="input",
                        help="height = width; counts are per image" + ("; 3 channels" if yours else ""))
        st.subheader("Trace")
        c1, c2 = st.columns(2)
        c1.number_input("Batch", *state.LIMITS["batch"], key="batch")
        c2.number_input("Trace size", *state.LIMITS["tsize"], key="tsize", help="input side used by traces")
        c1, c2 = st.columns(2)
        c1.selectbox("Device", state.DEVICES, key="device")
        c2.selectbox("Dtype", state.DTYPES, key="dtype")
        st.number_input("Seed", *state.LIMITS["seed"], key="seed")
        return st.file_uploader("Checkpoint", type=["pt", "pth", "safetensors"], key="ckpt_file",
                                help="loaded with weights_only / safetensors: no arbitrary unpickling")


def architecture_fields() -> None:
    """The spec fields of a preset or custom model, in a collapsed expander (open for ``custom``)."""
    with st.expander("Architecture", expanded=st.session_state["model"] == state.CUSTOM):
        st.selectbox("Block", state.BLOCKS, key="block")
        st.text_input("Blocks per stage", key="layers", help="comma-separated, e.g. 3,4,6,3")
        st.text_input("Widths", key="widths", help="planes per stage, e.g. 64,128,256,512")
        c1, c2 = st.columns(2)
        c1.number_input("Groups", *state.LIMITS["groups"], key="groups")
        c2.number_input("Width/group", *state.LIMITS["wpg"], key="wpg")
        st.selectbox("Shortcut", state.SHORTCUTS, key="shortcut",
                     help="A zero-pad identity, B projection where the shape changes, C projection "
                          "everywhere, none: the plain twin (He et al. 2015, Sec. 3.3)")
        st.checkbox("Pre-activation", key="preact", help="BN-ReLU before each convolution (He et al. 2016)")
        st.selectbox("Stem", state.STEMS, key="stem")


def page_context(view: state.ViewState, uploaded: Any, launch: tuple[str, ...]) -> state.PageContext | None:
    """The model and its summary for the pages, or ``None`` after showing why they cannot be made
    (an impossible spec, or a launch-declared factory that fails: one line, and the Compare and
    Studies pages still work)."""
    sketch = st.empty()
    try:
        subject = view.subject(launch)
        if view.page == "Architecture" and not compute.torch_loaded():
            # PyTorch is not imported yet (a server started without st.App's warm-up): show the stages.
            with sketch.container():
                st.caption("Loading PyTorch for shapes and counts...")
                if subject.spec is not None:
                    st.graphviz_chart(fallback.sketch_dot(subject.spec), width="content")
        summary = compute.summary(subject.key, view.input_shape(subject.in_channels))
        compute.check_input(summary)
        ckpt = session.read_upload(subject, uploaded)
        return state.PageContext(view, subject, summary, ckpt)
    except ResvizError as exc:
        st.error(str(exc))
        return None
    finally:
        sketch.empty()


def main() -> None:
    """One run of the script: sidebar, URL, then the chosen page."""
    st.set_page_config(page_title="resviz", page_icon=":material/account_tree:", layout="wide")
    launch, bad_launch = state.launch_models()
    ignored = state.init_session(st.session_state, st.query_params.to_dict(), launch)
    session.keep(st.session_state)
    uploaded = sidebar(launch)

    view = state.ViewState.from_mapping(st.session_state)
    session.sync_url(view, launch)
    for line in bad_launch:
        st.error(line)
    for item in ignored:
        st.warning(f"Ignored URL parameter {item}.")

    st.radio("Page", PAGES, key="page", horizontal=True, label_visibility="collapsed")
    ctx = page_context(view, uploaded, launch)
    if view.page == "Compare":
        from resviz.dashboard import pages_compare

        pages_compare.compare_page(view, ctx.spec if ctx else None, launch)
    elif view.page == "Studies":
        from resviz.dashboard import pages_studies

        pages_studies.studies_page(view, ctx.spec if ctx else None, launch)
    elif ctx is None:
        st.info("Fix the model or input size in the sidebar; the Compare and Studies pages work meanwhile.")
    else:
        problem = compute.device_problem(view.device)
        if problem and view.page in ("Architecture", "Layers", "Cost"):
            st.error(f"{problem} (this page needs no device)")
        st.subheader(f"{ctx.subject.name} · {shape_str(ctx.summary.input_shape[1:])}")
        if view.page in ("Activations", "Gradient flow"):
            from resviz.dashboard import pages_traced

            {"Activations": pages_traced.activations, "Gradient flow": pages_traced.gradient_flow}[view.page](ctx)
        else:
            from resviz.dashboard import pages_static

            {"Architecture": pages_static.architecture, "Layers": pages_static.layers,
             "Cost": pages_static.cost}[view.page](ctx)


SCRIPT = __file__
"""The script Streamlit runs for every browser interaction: this file."""

if __name__ == "__main__":  # a script run: one per browser interaction
    main()
else:  # imported by `streamlit run` to find the server's app
    app = st.App(SCRIPT, lifespan=warmup.lifespan)
