"""The dashboard driven through Streamlit's AppTest: every page, the main widgets, bad input.

Small models (resnet18 counted on the meta device, resnet20 traced at 16x16) keep the suite fast.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
import torch

from resviz.api import summarize
from resviz.dashboard import PAGES, state
from resviz.model.resnet import build_model
from resviz.render.format import human
from tests.apptest import APP, app, downloads, errors, figures_json, heading, metric, ok, uploader


# ------------------------------------------------------------------------------- pure state
def test_url_round_trip_keeps_only_changes() -> None:
    values = state.defaults("resnet56")
    assert state.to_params(values) == {"model": "resnet56"}
    values.update(shortcut="none", input=64, page="Cost", preact=True)
    params = state.to_params(values)
    assert params == {"model": "resnet56", "shortcut": "none", "preact": "1", "input": "64", "page": "Cost"}
    parsed, problems = state.parse_params(params)
    assert parsed == values and problems == []


def test_bad_url_values_fall_back_to_defaults() -> None:
    parsed, problems = state.parse_params({"model": "resnet9000", "input": "0", "device": "tpu", "seed": "x"})
    assert parsed == state.defaults(state.DEFAULT_MODEL)
    assert problems == ["unknown model 'resnet9000'", "input='0'", "device='tpu'", "seed='x'"]


def test_view_spec_names() -> None:
    base = state.defaults("resnet34")
    assert state.ViewState.from_mapping(base).spec().name == "resnet34"
    assert state.ViewState.from_mapping({**base, "shortcut": "none"}).spec().name == "plain34"
    custom = state.ViewState.from_mapping({**base, "shortcut": "C"}).spec()
    assert custom.name == "resnet34-custom" and custom.shortcut.value == "C"
    preact = state.defaults("preact_resnet164")
    assert state.ViewState.from_mapping({**preact, "shortcut": "none"}).spec().name == "plain_preact_resnet164"
    plain = state.defaults("plain_preact_resnet164")
    assert state.ViewState.from_mapping(plain).spec().name == "plain_preact_resnet164"
    assert state.ViewState.from_mapping({**plain, "layers": "2,2,2"}).spec().name == "plain_preact_resnet164-custom"
    own = state.ViewState.from_mapping({**state.defaults(state.CUSTOM), "layers": "1,1", "widths": "8,16"}).spec()
    assert own.name == state.CUSTOM and own.layers == (1, 1)


def test_view_keys_are_the_defaults() -> None:
    """``init_session`` fills every key of the view, so ``ViewState`` needs no defaults of its own."""
    assert set(state.defaults(state.DEFAULT_MODEL)) == set(state.VIEW_KEYS)
    for key, (lo, hi) in state.LIMITS.items():
        assert lo <= state.defaults(state.DEFAULT_MODEL)[key] <= hi


def test_every_dtype_offered_is_one_the_tracer_runs() -> None:
    from resviz.api.tracing import resolve_dtype as _resolve_dtype

    for dtype in state.DTYPES:
        _resolve_dtype(dtype, torch.device("cuda"))  # raises for a dtype the tracer rejects


@pytest.mark.parametrize(
    ("model", "expected"),
    [("resnet56", ["resnet56", "plain56"]), ("plain34", ["plain34", "resnet34"]),
     ("plain_preact_resnet164", ["plain_preact_resnet164", "preact_resnet164"]),
     ("plain_wide_resnet50_2", ["plain_wide_resnet50_2", "wide_resnet50_2"])],
)
def test_compare_defaults_to_the_model_and_its_twin(model: str, expected: list[str]) -> None:
    from resviz.dashboard.pages_compare import _defaults

    view = state.ViewState.from_mapping(state.defaults(model))
    assert _defaults(view, view.spec()) == expected


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter:UserWarning")
def test_trace_runs_on_the_device_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tracer gets the device as asked (it builds the spec there itself), and a checkpoint is
    loaded into a model built on the device ``auto`` resolves to. ``auto`` is made to resolve to
    the meta device, which a CPU has too, so that a model left on the CPU shows."""
    from resviz import api
    from resviz.dashboard import compute
    from resviz.spec import ResNetSpec

    real_resolve = api.resolve_device

    def resolve(device: Any = "auto") -> torch.device:
        return torch.device("meta") if str(device) == "auto" else real_resolve(device)

    calls: list[tuple[Any, Any]] = []

    def fake_trace(target: Any, **kwargs: Any) -> str:
        calls.append((target, kwargs["device"]))
        return "traced"

    monkeypatch.setattr(api, "resolve_device", resolve)
    monkeypatch.setattr(api, "trace", fake_trace)
    spec = build_model("resnet20", device="meta").spec.to_dict()
    compute.trace.clear()
    try:
        assert compute.trace(spec, (2, 3, 16, 16), "auto", "float32", 7) == "traced"
        target, device = calls[-1]
        assert isinstance(target, ResNetSpec) and target.name == "resnet20" and device == "auto"
        ckpt = _state_bytes("resnet20")
        assert compute.trace(spec, (2, 3, 16, 16), "auto", "float32", 7, "k", "r20.pt", _ckpt=ckpt) == "traced"
        model, device = calls[-1]
        assert device == "auto" and next(model.parameters()).device == resolve("auto")
    finally:
        compute.trace.clear()


def test_a_trace_too_large_for_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A link asking for batch 256 at 512x512 of resnet50 (~170 GiB) shows an error and never starts
    the trace; memory is fixed at 8 GiB here so the test does not depend on the machine."""
    from resviz import api
    from resviz.api import preflight as memory
    from resviz.api import tracing

    def no_trace(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the trace should have been refused")

    monkeypatch.setattr(memory, "available_memory", lambda device: memory.Available(8 * 2**30, "MemAvailable"))
    monkeypatch.setattr(tracing, "trace_module", no_trace)
    at = ok(app(model="resnet50", page="Activations", batch="256", tsize="512"))
    assert len(errors(at)) == 1, errors(at)
    assert "a trace of resnet50 at 256x3x512x512 needs about" in errors(at)[0]
    assert "8.0 GiB available on cpu (MemAvailable)" in errors(at)[0]
    assert "lower the batch to " in errors(at)[0]
    api.check_trace("resnet20", input_size="2x3x16x16", device="cpu")  # a small trace passes


# ---------------------------------------------------------------------------- default view
def test_default_view_is_resnet50_architecture() -> None:
    at = ok(app())
    assert at.radio(key="page").value == "Architecture"
    assert heading(at) == "resnet50 · 3x224x224"
    assert metric(at, "parameters") == "25.6M" and metric(at, "MACs") == "4.09G"
    assert metric(at, "depth") == "50"
    dot = at.get("graphviz_chart")[0].proto.spec
    assert dot.startswith("digraph") and "layer4" in dot
    assert not errors(at)
    assert at.query_params["model"] == "resnet50"


def test_change_model_input_size_and_shortcut() -> None:
    at = ok(app())
    at.selectbox(key="model").set_value("resnet18").run()
    ok(at)
    assert at.text_input(key="layers").value == "2,2,2,2" and at.selectbox(key="block").value == "basic"
    assert heading(at) == "resnet18 · 3x224x224" and metric(at, "parameters") == "11.7M"
    assert at.query_params["model"] == "resnet18"
    at.number_input(key="input").set_value(112).run()
    ok(at)
    assert heading(at) == "resnet18 · 3x112x112"
    assert metric(at, "MACs") == human(summarize("resnet18", "1x3x112x112").total_macs) == "485M"
    assert at.query_params["input"] == "112"
    at.selectbox(key="shortcut").set_value("none").run()
    ok(at)
    assert heading(at).startswith("plain18") and metric(at, "parameters") == "11.5M"  # no projections
    at.selectbox(key="shortcut").set_value("C").run()
    ok(at)
    assert heading(at).startswith("resnet18-custom")
    assert metric(at, "parameters") == "12M"  # a projection on every block adds weights
    assert at.query_params["shortcut"] == "C"


def test_url_reproduces_a_view() -> None:
    at = ok(app(model="resnet20", page="Layers", input="64"))
    assert at.radio(key="page").value == "Layers"
    assert heading(at) == "resnet20 · 3x64x64"
    frame = at.dataframe[0].value
    assert len(frame) == len(summarize("resnet20", "1x3x64x64").layers)


def test_bad_url_parameter_is_reported_and_ignored() -> None:
    at = ok(app(model="resnet20", input="abc"))
    assert any("input='abc'" in str(w.value) for w in at.warning)
    assert heading(at) == "resnet20 · 3x32x32"


# ----------------------------------------------------------------------------------- pages
def test_architecture_views() -> None:
    at = ok(app(model="resnet20", tsize="16"))
    views = at.selectbox(key="arch_view").options
    assert "overview" in views
    for view in views:
        at.selectbox(key="arch_view").set_value(view).run()
        ok(at)
        if view == "bottleneck":  # resnet20 has basic blocks: a readable error, not a crash
            assert len(errors(at)) == 1 and "resnet20 has no bottleneck blocks" in errors(at)[0], errors(at)
            continue
        assert not errors(at), (view, errors(at))
        assert at.get("graphviz_chart")[0].proto.spec.startswith("digraph")
    assert downloads(at)[0] == "Download DOT"


def test_layers_page_filters_and_downloads() -> None:
    at = ok(app(model="resnet18", page="Layers"))
    assert len(at.dataframe[0].value) == len(summarize("resnet18").layers)
    at.text_input(key="layers_filter").set_value("layer2").run()
    names = list(ok(at).dataframe[0].value["name"])
    assert names and all("layer2" in n for n in names)
    at.multiselect(key="layers_types").set_value(["Conv2d"]).run()
    frame = ok(at).dataframe[0].value
    assert set(frame["type"]) == {"Conv2d"} and len(frame) == 5  # 4 block convs + 1 projection
    at.selectbox(key="layers_depth").set_value(2).run()
    assert set(ok(at).dataframe[0].value["name"]) <= {"layer1.0", "layer1.1", "layer2.0", "layer2.1",
                                                      "layer3.0", "layer3.1", "layer4.0", "layer4.1"}
    labels = downloads(at)
    assert labels == ["Download CSV", "Download JSON"]


def test_cost_page_and_reconciliation() -> None:
    at = ok(app(model="resnet20", page="Cost"))
    figs = figures_json(at)
    assert [f["data"][0]["type"] for f in figs] == ["treemap", "bar", "bar"]
    assert figs[0]["data"][0]["values"][0] == summarize("resnet20").total_macs
    at.radio(key="cost_kind").set_value("sunburst").run()
    assert figures_json(ok(at))[0]["data"][0]["type"] == "sunburst"
    at.toggle(key="cost_reconcile").set_value(True).run()
    ok(at)
    assert not errors(at)
    assert len(at.dataframe) == 2 and "fvcore" in at.dataframe[1].value.columns


def test_activations_page() -> None:
    at = ok(app(model="resnet20", page="Activations", tsize="16"))
    assert not errors(at)
    depth, hist = figures_json(at)
    assert [t["name"] for t in depth["data"]] == ["std", "rms"]
    assert hist["data"][0]["type"] == "bar"
    at.selectbox(key="act_layer").set_value("layer3.2.relu2").run()
    assert "layer3.2.relu2" in figures_json(ok(at))[1]["layout"]["title"]["text"]
    assert len(at.dataframe[0].value) == len(summarize("resnet20").layers)


def test_gradient_flow_page_with_plain_twin() -> None:
    at = ok(app(model="resnet20", page="Gradient flow", tsize="16"))
    assert not errors(at)
    fig = figures_json(at)[0]
    assert fig["layout"]["yaxis"]["type"] == "log"
    assert [t["name"] for t in fig["data"]] == ["main path", "skip path", "total", "plain20: total"]
    assert len(at.dataframe[0].value) == 9
    at.toggle(key="grad_plain").set_value(False).run()
    assert len(figures_json(ok(at))[0]["data"]) == 3


def test_compare_page_runs_and_offers_the_report() -> None:
    at = ok(app(model="resnet20", page="Compare"))
    assert at.multiselect(key="cmp_models").value == ["resnet20", "plain20"]
    at.number_input(key="cmp_steps").set_value(1)
    at.number_input(key="cmp_batch").set_value(4)
    at.number_input(key="cmp_size").set_value(16)
    at.button(key="cmp_run").click().run()
    ok(at)
    assert not errors(at)
    frame = at.dataframe[0].value
    assert list(frame["model"]) == ["resnet20", "plain20"]
    assert "Download JSON" in downloads(at)


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("layers", "0,3,3", "at least 1 block"),
        ("layers", "3,four,3", "blocks per stage must be comma-separated integers"),
        ("widths", "16,32", "one width per stage"),
        ("groups", 2, "groups=1"),
    ],
)
def test_impossible_spec_shows_an_error_and_the_rest_works(key: str, value: object, message: str) -> None:
    at = ok(app(model="resnet20"))
    if isinstance(value, int):
        at.number_input(key=key).set_value(value).run()
    else:
        at.text_input(key=key).set_value(str(value)).run()
    ok(at)
    assert any(message in e for e in errors(at)), errors(at)
    at.radio(key="page").set_value("Compare").run()
    assert ok(at).multiselect(key="cmp_models").value == ["resnet20", "plain20"]
    at.selectbox(key="model").set_value("resnet32").run()  # picking a preset repairs the spec
    assert not errors(ok(at)) and at.radio(key="page").value == "Compare"


def test_input_too_small() -> None:
    at = ok(app(model="resnet50", input="8"))
    assert any("too small for resnet50" in e for e in errors(at)), errors(at)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_absent() -> None:
    at = ok(app(model="resnet20", device="cuda"))
    assert any("CUDA" in e for e in errors(at))
    assert at.get("graphviz_chart")  # the static pages keep working
    at.radio(key="page").set_value("Activations").run()
    assert any("CUDA" in e for e in errors(ok(at)))


def _state_bytes(name: str) -> bytes:
    buf = io.BytesIO()
    torch.save(build_model(name, device="cpu").state_dict(), buf)
    return buf.getvalue()


def test_checkpoint_uploads() -> None:
    at = ok(app(model="resnet20", page="Layers"))
    uploader(at).set_value(("broken.pt", b"not a checkpoint", "application/octet-stream")).run()
    assert any("cannot load checkpoint broken.pt" in e for e in errors(ok(at)))
    assert at.dataframe  # the page still renders
    uploader(at).set_value(("r32.pt", _state_bytes("resnet32"), "application/octet-stream")).run()
    assert any("does not match resnet20" in e for e in errors(ok(at))), errors(at)
    uploader(at).set_value(("r20.pt", _state_bytes("resnet20"), "application/octet-stream")).run()
    assert not errors(ok(at))
    assert any("tensors match resnet20" in str(c.value) for c in at.sidebar.caption)


def _safetensors_bytes(name: str) -> bytes:
    from safetensors.torch import save

    return bytes(save(build_model(name, device="cpu").state_dict()))


def test_safetensors_checkpoint_uploads() -> None:
    """The safetensors path of the uploader: read without unpickling, checked like a .pt file."""
    at = ok(app(model="resnet20", page="Layers"))
    good = _safetensors_bytes("resnet20")
    uploader(at).set_value(("cut.safetensors", good[: len(good) // 2], "application/octet-stream")).run()
    assert any("cannot load checkpoint cut.safetensors" in e for e in errors(ok(at))), errors(at)
    assert at.dataframe  # the page still renders
    uploader(at).set_value(("r32.safetensors", _safetensors_bytes("resnet32"), "application/octet-stream")).run()
    assert any("r32.safetensors" in e and "does not match resnet20" in e for e in errors(ok(at))), errors(at)
    uploader(at).set_value(("r20.safetensors", good, "application/octet-stream")).run()
    assert not errors(ok(at))
    assert any("r20.safetensors" in str(c.value) and "tensors match resnet20" in str(c.value)
               for c in at.sidebar.caption)
    at.number_input(key="tsize").set_value(16)  # traces start from the uploaded weights
    at.radio(key="page").set_value("Activations").run()
    assert not errors(ok(at))
    assert any("uploaded checkpoint" in str(c.value) for c in at.caption)


def test_architecture_color_by_counts() -> None:
    at = ok(app(model="resnet20"))
    plain = at.get("graphviz_chart")[0].proto.spec
    assert at.selectbox(key="arch_color").value is None
    at.selectbox(key="arch_color").set_value("macs").run()
    colored = ok(at).get("graphviz_chart")[0].proto.spec
    assert colored != plain and "MACs (conv + linear)" in colored
    assert at.query_params["model"] == "resnet20"
    at.selectbox(key="arch_view").set_value("stages").run()
    assert "MACs (conv + linear)" in ok(at).get("graphviz_chart")[0].proto.spec
    at.selectbox(key="arch_color").set_value("params").run()
    assert "parameters" in ok(at).get("graphviz_chart")[0].proto.spec


def test_architecture_color_by_a_measurement_runs_a_trace_on_request() -> None:
    at = ok(app(model="resnet20", tsize="16"))
    at.selectbox(key="arch_color").set_value("grad-ratio").run()
    ok(at)  # no trace yet: the uncoloured diagram, a note and a button
    assert any("needs a trace of resnet20" in str(i.value) for i in at.info)
    assert "grad ratio" not in at.get("graphviz_chart")[0].proto.spec
    at.button(key="arch_trace").click().run()
    assert not errors(ok(at))
    assert "grad ratio" in at.get("graphviz_chart")[0].proto.spec
    at.selectbox(key="arch_color").set_value("std").run()  # the same trace is at hand now
    assert not ok(at).info and "activation std" in at.get("graphviz_chart")[0].proto.spec
    at.selectbox(key="shortcut").set_value("none").run()  # a plain net has no gradient ratio
    assert "grad-ratio" not in ok(at).selectbox(key="arch_color").options


def test_sketch_while_torch_loads_gives_way_to_the_diagram(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh server draws the spec's stages before ``import torch``; only the real diagram stays."""
    from resviz.dashboard import compute, fallback
    from resviz.zoo import get_spec

    sketch = fallback.sketch_dot(get_spec("resnet50"))
    assert sketch.startswith(f"digraph {fallback.SKETCH_NAME} {{")
    assert "3 x bottleneck block\\n256 channels" in sketch and "6 x bottleneck" in sketch
    assert "fc 1000" in sketch and "input, 3 channels" in sketch
    drawn: list[str] = []
    real_chart = st.graphviz_chart

    def chart(figure_or_dot: Any, *args: Any, **kwargs: Any) -> Any:
        drawn.append(str(figure_or_dot))
        return real_chart(figure_or_dot, *args, **kwargs)

    monkeypatch.setattr(st, "graphviz_chart", chart)
    monkeypatch.setattr(compute, "torch_loaded", lambda: False)
    at = ok(app())
    assert drawn[0] == sketch and len(drawn) == 2  # the sketch first, while torch "loads"
    assert not drawn[1].startswith(f"digraph {fallback.SKETCH_NAME}")
    charts = [c.proto.spec for c in at.get("graphviz_chart")]
    assert charts == [drawn[1]]  # the sketch gave way to the real diagram
    assert not any("Loading PyTorch" in str(c.value) for c in at.caption)


def test_every_page_renders() -> None:
    at = ok(app(model="resnet20", tsize="16"))
    for page in PAGES:
        at.radio(key="page").set_value(page).run()
        ok(at)
        assert at.radio(key="page").value == page
        assert at.query_params.get("page", "Architecture") == page


def test_server_imports_torch_before_it_answers() -> None:
    """``streamlit run app.py`` serves ``app.app`` (an ``st.App``), whose lifespan loads PyTorch and
    what the default page needs; importing app.py for that loads neither torch nor the page modules.

    In a fresh interpreter, since this one has imported torch already.
    """
    code = f"""
import asyncio, sys
from pathlib import Path
import streamlit as st
from streamlit.web.server.app_discovery import discover_asgi_app
found = discover_asgi_app(Path({APP!r}))
assert found.is_asgi_app and found.app_name == "app", found
sys.path.insert(0, {str(Path(APP).parent)!r})
import app
assert isinstance(app.app, st.App)
assert "torch" not in sys.modules and "resviz.dashboard.compute" not in sys.modules
from resviz.dashboard import warmup
async def serve():
    async with warmup.lifespan(app.app):
        return [m for m in warmup.MODULES if m not in sys.modules]
assert asyncio.run(serve()) == []
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]

