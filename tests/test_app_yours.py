"""The dashboard with the user's own models, declared at launch (``streamlit run app.py -- --model X``).

Streamlit hands the arguments after ``--`` to the script as ``sys.argv``; AppTest runs the script in
this process, so the tests set ``sys.argv``. The models are small local copies of real families
(:mod:`tests.families`): a torchvision-style ResNet and a ViT, both at 32x32 (the ViT's patch
embedding needs exactly its ``img_size``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resviz.api import summarize, trace
from resviz.dashboard import state
from resviz.render.format import human
from tests.apptest import APP, errors, figures_json, heading, metric, ok
from tests.apptest import app as shared_app

TV = "tests.families.tv_resnet:build"
VIT = "tests.families.vit:build"


def launched(monkeypatch: pytest.MonkeyPatch, *models: str) -> None:
    """Start the script as ``streamlit run app.py -- --model A --model B`` would."""
    argv = [APP]
    for m in models:
        argv += ["--model", m]
    monkeypatch.setattr(sys, "argv", argv)


def app(**params: str) -> AppTest:
    return shared_app(120, **params)


def marker_factory(tmp_path: Path) -> tuple[str, Path]:
    """A factory in a file that leaves a marker when its file is imported or its function called."""
    marker = tmp_path / "called"
    source = tmp_path / "mine.py"
    source.write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        "def build():\n"
        "    import torch\n"
        f"    Path({str(marker)!r}).write_text('called')\n"
        "    return torch.nn.Linear(2, 2)\n"
    )
    return f"{source}:build", marker


# ------------------------------------------------------------------------------ launch args
def test_launch_arguments_accept_factories_only() -> None:
    models, problems = state.read_launch(["--model", TV, "--server.port", "1", "--model", "resnet50",
                                          "--model", VIT, "--model", TV])
    assert models == (TV, VIT)  # repeats once, unknown arguments left to others
    assert len(problems) == 1 and "'resnet50' is not a model factory" in problems[0]
    assert state.read_launch([]) == ((), [])
    assert state.read_launch(["--mod", TV]) == ((), [])  # no abbreviations: only --model declares
    models, problems = state.read_launch(["--model"])
    assert models == () and len(problems) == 1 and "expected one argument" in problems[0]


def test_a_bad_launch_value_is_one_error_line_and_the_page_works(monkeypatch: pytest.MonkeyPatch) -> None:
    launched(monkeypatch, "not-a-factory")
    at = ok(app(model="resnet20"))
    assert len(errors(at)) == 1 and "'not-a-factory' is not a model factory" in errors(at)[0]
    assert heading(at) == "resnet20 · 3x32x32"
    assert at.selectbox(key="model").options[-1] == state.CUSTOM  # nothing was added


# ------------------------------------------------------------------------------ URLs
def test_a_url_cannot_name_an_undeclared_factory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A link naming a factory that was not declared at launch is ignored like an unknown name:
    nothing is imported or called (the file's marker stays absent), the default model opens."""
    target, marker = marker_factory(tmp_path)
    launched(monkeypatch, TV)
    at = ok(app(model=target))
    assert not marker.exists()
    assert any("Ignored URL parameter unknown model" in str(w.value) for w in at.warning)
    assert heading(at) == "resnet50 · 3x224x224"
    monkeypatch.delitem(sys.modules, "tests.families.vit", raising=False)
    at = ok(app(model=VIT, page="Gradient flow"))
    assert "tests.families.vit" not in sys.modules
    assert any("Ignored URL parameter unknown model 'tests.families.vit:build'" in str(w.value) for w in at.warning)
    assert at.query_params["model"] == "resnet50"


def test_a_url_selects_a_declared_model(monkeypatch: pytest.MonkeyPatch) -> None:
    launched(monkeypatch, TV, VIT)
    at = ok(app(model=TV, input="32"))
    assert not errors(at) and not at.warning
    assert heading(at) == f"{TV} · 3x32x32"
    s = summarize(TV, input_size=(1, 3, 32, 32))
    assert metric(at, "residual blocks") == str(len(s.blocks)) == "3"
    assert metric(at, "parameters") == human(s.total_params) and metric(at, "MACs") == human(s.total_macs)
    assert metric(at, "depth") == "8"  # stem conv + 3 blocks x 2 convs + fc; the projection is not counted
    assert at.query_params["model"] == TV and at.query_params["input"] == "32"


# ------------------------------------------------------------------------------ sidebar
def test_the_selectbox_lists_declared_models_as_yours(monkeypatch: pytest.MonkeyPatch) -> None:
    launched(monkeypatch, TV, VIT)
    at = ok(app())
    box = at.selectbox(key="model")
    assert box.options[-3:] == [state.CUSTOM, f"yours: {TV}", f"yours: {VIT}"]
    assert at.text_input(key="layers").value == "3,4,6,3"  # the architecture fields of resnet50
    box.set_value(VIT).run()
    ok(at)
    assert at.number_input(key="input").value == 224 and at.number_input(key="tsize").value == state.TRACE_SIDE
    assert not at.sidebar.text_input  # the spec fields are gone: the architecture is the model's own
    captions = [str(c.value) for c in at.sidebar.caption]
    assert any("the model's own" in c for c in captions)
    assert at.get("file_uploader")  # checkpoints are checked against the factory's model
    # this ViT takes 32x32 only: one line, no crash
    assert len(errors(at)) == 1 and "VisionTransformer fails on input 1x3x224x224" in errors(at)[0], errors(at)
    at.number_input(key="input").set_value(32).run()
    ok(at)
    assert not errors(at) and heading(at) == f"{VIT} · 3x32x32"
    assert metric(at, "residual blocks") == "4"  # attention and MLP additions of two blocks
    at.selectbox(key="model").set_value("resnet20").run()
    assert heading(ok(at)) == "resnet20 · 3x32x32" and at.text_input(key="layers").value == "3,3,3"


# ------------------------------------------------------------------------------ pages
def test_architecture_views_and_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    launched(monkeypatch, TV)
    at = ok(app(model=TV, input="32", tsize="32"))
    assert "main/skip gradient ratio (needs a trace)" in at.selectbox(key="arch_color").options  # it has blocks
    at.selectbox(key="arch_color").set_value("macs").run()
    assert "MACs (conv + linear)" in ok(at).get("graphviz_chart")[0].proto.spec
    at.selectbox(key="arch_color").set_value("grad-ratio").run()
    at.button(key="arch_trace").click().run()
    assert not errors(ok(at)) and "grad ratio" in at.get("graphviz_chart")[0].proto.spec
    at.selectbox(key="arch_color").set_value(None).run()
    drawn = []
    for view in at.selectbox(key="arch_view").options:
        at.selectbox(key="arch_view").set_value(view).run()
        shown = errors(ok(at))
        if shown:  # a view this model has nothing for: one readable line, not a crash
            assert len(shown) == 1 and len(shown[0]) < 300, (view, shown)
            continue
        assert at.get("graphviz_chart")[0].proto.spec.startswith("digraph")
        drawn.append(view)
    assert {"overview", "stages", "layers", "gradient-flow"} <= set(drawn), drawn
    assert at.get("download_button")[0].proto.label == "Download DOT"


def test_layers_and_cost_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    launched(monkeypatch, VIT)
    at = ok(app(model=VIT, input="32", page="Layers"))
    s = summarize(VIT, input_size=(1, 3, 32, 32))
    assert len(at.dataframe[0].value) == len(s.layers)
    at.radio(key="page").set_value("Cost").run()
    ok(at)
    assert figures_json(at)[0]["data"][0]["values"][0] == s.total_macs
    at.toggle(key="cost_reconcile").set_value(True).run()
    assert not errors(ok(at))
    assert "fvcore" in at.dataframe[1].value.columns


def test_activations_page(monkeypatch: pytest.MonkeyPatch) -> None:
    launched(monkeypatch, VIT)
    at = ok(app(model=VIT, input="32", tsize="32", page="Activations"))
    assert not errors(at)
    assert any("VisionTransformer traced on cpu" in str(c.value) for c in at.caption)
    expected = trace(VIT, input_size=(2, 3, 32, 32), device="cpu", seed=0)
    assert len(at.dataframe[0].value) == len(expected.layers)


def test_gradient_flow_of_a_model_with_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """One row per block found; at each block input, total = main + skip as vectors, so the norms
    obey the triangle inequality; no plain-twin toggle (no spec to take the shortcuts out of)."""
    launched(monkeypatch, TV)
    at = ok(app(model=TV, input="32", tsize="32", page="Gradient flow"))
    assert not errors(at)
    assert not any("no residual blocks" in str(i.value) for i in at.info)
    assert not at.get("toggle")
    assert [t["name"] for t in figures_json(at)[0]["data"]] == ["main path", "skip path", "total"]
    frame = at.dataframe[0].value
    assert len(frame) == 3
    for main, skip, total in zip(frame["grad main"], frame["grad skip"], frame["grad total"], strict=True):
        assert total > 0 and main > 0 and skip > 0
        assert abs(main - skip) * (1 - 1e-4) <= total <= (main + skip) * (1 + 1e-4)
    expected = trace(TV, input_size=(2, 3, 32, 32), device="cpu", seed=0)
    assert list(frame["grad total"]) == pytest.approx([b.grad_total for b in expected.blocks], rel=1e-5)


# ------------------------------------------------------------------------------ failures
def test_a_failing_factory_is_one_line_and_compare_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "tests.families.no_such_module:build"
    launched(monkeypatch, missing)
    at = ok(app(model=missing))
    assert len(errors(at)) == 1 and "cannot import tests.families.no_such_module" in errors(at)[0]
    assert not any(" · " in str(h.value) for h in at.subheader)  # no page for it
    at.radio(key="page").set_value("Compare").run()
    ok(at)
    box = at.multiselect(key="cmp_models")
    assert box.value == [missing, "resnet20"] and f"yours: {missing}" in box.options
    at.selectbox(key="model").set_value("resnet20").run()
    assert not errors(ok(at)) and at.radio(key="page").value == "Compare"


def test_a_factory_that_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = tmp_path / "broken.py"
    source.write_text("def build():\n    raise RuntimeError('out of ideas')\n")
    target = f"{source}:build"
    launched(monkeypatch, target)
    at = ok(app(model=target, page="Layers"))
    assert len(errors(at)) == 1 and "raised RuntimeError: out of ideas" in errors(at)[0]
    at.radio(key="page").set_value("Studies").run()
    assert f"yours: {target}" in ok(at).multiselect(key="study_models").options


def test_studies_page_studies_a_declared_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`resviz.api.study` takes factory strings: the page offers the declared model, picks it
    by default when it is the sidebar's, and studies it alone (it has no plain twin)."""
    import resviz

    launched(monkeypatch, TV)
    at = ok(app(model=TV, input="32", page="Studies"))
    assert at.multiselect(key="study_models").value == [TV]
    at.text_input(key="study_input").set_value("2x3x32x32")
    at.button(key="study_go").click().run()
    assert not errors(ok(at))
    want = resviz.study("signal", TV, input_size="2x3x32x32", device="auto")
    from resviz.render.report.study_html import study_findings

    assert any(f"signal study of {', '.join(want.models)}:" in str(c.value) for c in at.caption)
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert all(f"- {line}" in shown for line in study_findings(want))
    assert any("without a plain twin" in str(i.value) for i in at.info)
    assert at.get("plotly_chart")


def test_compare_page_compares_a_declared_model_with_a_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`resviz.api.compare` takes factory strings: the declared model trains beside a preset."""
    launched(monkeypatch, TV)
    at = ok(app(model=TV, page="Compare"))
    assert at.multiselect(key="cmp_models").value == [TV, "resnet20"]  # the sidebar's model, preselected
    at.number_input(key="cmp_steps").set_value(1)
    at.number_input(key="cmp_batch").set_value(4)
    at.number_input(key="cmp_size").set_value(16)
    at.button(key="cmp_run").click().run()
    assert not errors(ok(at))
    frame = at.dataframe[0].value
    assert list(frame["model"]) == [TV, "resnet20"]
    assert bool(frame["shortcuts"].iloc[0]) and int(frame["depth"].iloc[0]) == 8


def _tv_state(bias: float) -> bytes:
    """The state dict of the declared torchvision-style model, its classifier's bias set to ``bias``."""
    import io

    import torch

    from tests.families import tv_resnet

    torch.manual_seed(0)
    model = tv_resnet.build()
    with torch.no_grad():
        model.fc.bias.copy_(torch.arange(model.fc.out_features) * bias)  # not a constant: it moves the loss
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def test_a_checkpoint_for_a_declared_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload is checked against the factory's model (one line when it does not fit) and the traces
    start from its weights: the loss equals a direct trace of the factory's model with them loaded."""
    from resviz.api import load_checkpoint, resolve_model
    from tests.apptest import uploader

    launched(monkeypatch, TV)
    at = ok(app(model=TV, input="32", tsize="16", page="Activations"))
    plain_loss = trace(TV, input_size=(2, 3, 16, 16), device="cpu", seed=0).loss
    uploader(at).set_value(("r20.pt", _state_bytes_resnet20(), "application/octet-stream")).run()
    assert any("r20.pt" in e and "does not match" in e for e in errors(ok(at))), errors(at)
    data = _tv_state(3.0)
    uploader(at).set_value(("mine.pt", data, "application/octet-stream")).run()
    assert not errors(ok(at))
    assert any("mine.pt" in str(c.value) and f"tensors match {TV}" in str(c.value) for c in at.sidebar.caption)
    shown = next(str(c.value) for c in at.caption if "uploaded checkpoint" in str(c.value))
    model = load_checkpoint(resolve_model(TV, "cpu", 0).model, data, "mine.pt")
    want = trace(model, input_size=(2, 3, 16, 16), device="cpu", seed=0).loss
    assert want is not None and plain_loss is not None and abs(want - plain_loss) > 0.1
    assert f"loss {want:.4g}" in shown


def _state_bytes_resnet20() -> bytes:
    import io

    import torch

    from resviz.model.resnet import build_model

    buf = io.BytesIO()
    torch.save(build_model("resnet20", device="cpu").state_dict(), buf)
    return buf.getvalue()
