"""``resviz.study`` and ``resviz study``: the right records for every kind, twins and notes, JSON round
trip, the HTML page, and one-line refusals that leave no file behind.

Tiny inputs (resnet20 and plain20 at 8x8 or 16x16, few points, samples and steps) keep the file fast.
Every number checked here is recomputed in the test, by hooks or autograd on a model built here.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

import resviz
from resviz.cli import app
from resviz.errors import ResvizError
from resviz.model.resnet import build_model
from resviz.records import StudyKind, StudyResult
from resviz.records.paths import LesionStudy, PathsStudy
from resviz.records.signal import ShatterStudy, SignalStudy
from resviz.render.report.study_html import render_study_html, study_findings
from resviz.studies.lesion import digits_split

runner = CliRunner()


def _seeded(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(name, device="cpu")


def _block_output_var(model: torch.nn.Module, block: str, x: torch.Tensor) -> float:
    """Average channel variance (population) of ``block``'s output, BatchNorm on batch statistics."""
    seen: list[torch.Tensor] = []
    handle = dict(model.named_modules())[block].register_forward_hook(lambda _m, _a, out: seen.append(out))
    model.eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train()
    with torch.no_grad():
        model(x)
    handle.remove()
    return float(seen[0].var(dim=(0, 2, 3), unbiased=False).mean())


def test_signal_adds_the_twin_and_measures_the_seeded_model() -> None:
    result = resviz.study("signal", "resnet20", input_size="4x3x16x16", device="cpu")
    assert result.kind is StudyKind.SIGNAL and result.models == ("resnet20", "plain20")
    (record,) = result.records
    assert isinstance(record, SignalStudy) and record.input_shape == (4, 3, 16, 16)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for name in ("resnet20", "plain20"):
        want = _block_output_var(_seeded(name), "layer3.2", x)
        assert record.model(name).blocks[-1].avg_var == pytest.approx(want, rel=1e-4)
    assert result.settings["command"] == (
        "resviz study signal resnet20 --input 4x3x16x16 --seed 0 --device cpu")


def test_a_module_is_studied_alone_with_a_note_and_left_as_it_was() -> None:
    model = _seeded("resnet20", seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    result = resviz.study("signal", model, input_size="4x3x8x8")
    assert result.models == ("resnet20",)
    assert any("module" in n and "without a plain twin" in n for n in result.notes)
    assert result.settings["command"] == ""
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    want = _block_output_var(_seeded("resnet20", seed=3), "layer3.2", x)
    assert result.records[0].model("resnet20").blocks[-1].avg_var == pytest.approx(want, rel=1e-4)


def test_weights_load_into_the_named_model_without_twin(tmp_path: Path) -> None:
    ckpt = tmp_path / "r20.pt"
    torch.save(_seeded("resnet20", seed=7).state_dict(), ckpt)
    loaded = resviz.study("signal", "resnet20", input_size="4x3x8x8", weights=str(ckpt))
    assert loaded.models == ("resnet20",) and any("checkpoint" in n for n in loaded.notes)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    want = _block_output_var(_seeded("resnet20", seed=7), "layer2.0", x)
    assert loaded.records[0].model("resnet20").blocks[3].avg_var == pytest.approx(want, rel=1e-4)
    assert want != pytest.approx(_block_output_var(_seeded("resnet20"), "layer2.0", x), rel=1e-3)
    assert loaded.settings["weights"] == "checkpoint r20.pt"


def test_shatter_neighbour_correlation_matches_autograd() -> None:
    result = resviz.study("shatter", ["resnet20"], input_size="3x8x8", points=6, twin=False)
    (record,) = result.records
    assert isinstance(record, ShatterStudy) and record.points == 6 and len(record.models) == 2
    entry = record.entry("resnet20", "eval")
    assert len(entry.autocorrelation) == 6 // 4 + 1
    ends = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(0, 1, 6).reshape(-1, 1, 1, 1)
    x = (ends[0] + t * (ends[1] - ends[0])).requires_grad_(True)
    model = _seeded("resnet20").eval()
    (g,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
    g = g.reshape(6, -1)
    want = float(F.cosine_similarity(g[:-1], g[1:], dim=1).mean())
    assert entry.neighbor_correlation == pytest.approx(want, abs=1e-4)


def test_paths_counts_and_plain_twin_left_out() -> None:
    result = resviz.study("paths", "resnet20", input_size="2x3x8x8", samples=2)
    assert result.models == ("resnet20",) and any("plain20 left out" in n for n in result.notes)
    (record,) = result.records
    assert isinstance(record, PathsStudy) and record.n == 9
    assert [r.paths for r in record.lengths] == [math.comb(9, k) for k in range(10)]
    assert record.settings.input_shape == (2, 3, 8, 8) and record.settings.samples_per_k == 2
    assert record.settings.weights == "initialisation"


def test_lesion_without_training_scores_the_seeded_model() -> None:
    result = resviz.study("lesion", ["resnet20"], steps=0, twin=False, seeds=1, max_k=1)
    (record,) = result.records
    assert isinstance(record, LesionStudy) and record.settings.held_out == 360
    _, held = digits_split((3, 8, 8), held_out=360, batch=32, count=1, seed=0, eval_batch=360)
    model = _seeded("resnet20").eval()
    with torch.no_grad():
        logits = torch.cat([model(x) for x, _ in held]).double()
    y = torch.cat([y for _, y in held])
    assert record.baseline.loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-6)
    assert record.baseline.error == pytest.approx(float((logits.argmax(1) != y).double().mean()))


def test_lesion_trains_both_twins_and_round_trips() -> None:
    result = resviz.study("lesion", "resnet20", steps=2, seeds=1, max_k=1, input_size="4x3x8x8")
    assert result.models == ("resnet20", "plain20") and result.settings["steps"] == "2"
    untrained = resviz.study("lesion", "resnet20", steps=0, seeds=1, max_k=1, twin=False)
    assert result.records[0].baseline != untrained.records[0].baseline  # two SGD steps changed the weights
    back = StudyResult.from_json(result.to_json())
    plain = back.records[1]
    assert back.to_dict() == result.to_dict() and isinstance(plain, LesionStudy) and plain.plain
    assert math.isnan(next(b.loss for b in plain.blocks if not b.removable))


def test_json_round_trip_of_every_kind_and_html_page(tmp_path: Path) -> None:
    result = resviz.study("shatter", "resnet20", input_size="3x8x8", points=4)
    back = StudyResult.from_dict(json.loads(result.to_json()))
    assert back == result
    page = render_study_html(result)
    assert 'class="plotly-graph-div"' in page and "<script" in page
    for sentence in study_findings(result):
        assert html.escape(sentence) in page
    with pytest.raises(ValueError, match=r"not a resviz\.study"):
        StudyResult.from_dict(result.records[0].to_dict())
    written = resviz.write_study_report(result, tmp_path / "s.json")
    assert StudyResult.from_json(written.read_text()) == result


@pytest.mark.parametrize(("call", "message"), [
    (lambda: resviz.study("nope", "resnet20"), "unknown study 'nope'"),
    (lambda: resviz.study("shatter", "resnet20", points=10**12), "points = 1000000000000: more than"),
    (lambda: resviz.study("paths", "resnet20", samples=0), "must be at least 1"),
    (lambda: resviz.study("signal", "resnet20", steps=5), "steps are for the lesion study"),
    (lambda: resviz.study("signal", "resnet20", bogus=1), "takes no option 'bogus'"),
    (lambda: resviz.study("shatter", "resnet20", input_size="2x3x8x8"), "takes CxHxW"),
    (lambda: resviz.study("signal", "resnet20", input_size="60000x3x1024x1024"), "input size"),
    (lambda: resviz.study("signal", "resnet20", seed=-1), "seed"),
    (lambda: resviz.study("lesion", "resnet20", seeds=10**6), "seeds = 1000000: more than"),
    (lambda: resviz.study("lesion", "resnet20", steps=10**9), "steps = 1000000000: more than"),
    (lambda: resviz.study("signal", [_seeded("resnet20")], weights="x.pt"), "weights load into one network"),
    (lambda: resviz.study("shatter", "resnet20", train_gradient="bogus"), "train_gradient must be one of"),
    (lambda: resviz.study("shatter", "resnet20", bn_mode=["eval"]), "bn_mode must be one of"),
    (lambda: resviz.study("shatter", "resnet20", max_lag=1.5), "max lag = 1.5: must be an integer"),
    (lambda: resviz.study("shatter", "resnet20", output_index="1"), "output index = '1': must be an integer"),
    (lambda: resviz.study("lesion", "resnet20", max_k="2"), "max k = '2': must be an integer"),
    (lambda: resviz.study("lesion", "resnet20", lr="abc"), "learning rate must be a positive number"),
    (lambda: resviz.study("lesion", "resnet20", lr=-1), "learning rate must be a positive number"),
    (lambda: resviz.study("lesion", "resnet20", blocks="layer1.0"), "blocks must be a list"),
    (lambda: resviz.study("paths", "resnet20", ks=["1"]), "path length = '1': must be an integer"),
    (lambda: resviz.study("paths", "resnet20", fraction="0.5"), r"fraction must be a number in \(0, 1\]"),
    (lambda: resviz.study("paths", "resnet20", fraction=2), r"fraction must be a number in \(0, 1\]"),
])
def test_refusals_are_one_line(call: object, message: str) -> None:
    with pytest.raises(ResvizError, match=message) as info:
        call()  # type: ignore[operator]
    assert "\n" not in str(info.value)


def test_option_values_are_refused_before_any_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in a lesion option costs nothing: it is refused before the networks are built."""
    from resviz.api import studying

    def never(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("built a network before checking the options")

    monkeypatch.setattr(studying, "_build", never)
    with pytest.raises(ResvizError, match="max k"):
        resviz.study("lesion", "resnet20", max_k="2")


class _TupleOut(nn.Module):
    """A residual network that returns its logits inside a tuple, as many models do."""

    def __init__(self) -> None:
        super().__init__()
        self.net = build_model("resnet20", device="cpu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.net(x),)


@pytest.mark.parametrize("kind", ["paths", "lesion", "shatter"])
def test_studies_read_the_logits_of_any_output(kind: str) -> None:
    """paths, lesion and shatter read the logits the way training and tracing do: a tuple's first tensor."""
    torch.manual_seed(0)
    model = _TupleOut()
    size = {"paths": "2x3x8x8", "lesion": "3x8x8", "shatter": "3x8x8"}[kind]
    options = {"paths": {"samples": 1, "ks": [0, 1]}, "lesion": {"max_k": 1}, "shatter": {"points": 8}}[kind]
    result = resviz.study(kind, model, input_size=size, **options)  # type: ignore[arg-type]
    assert result.records and result.models == ("_TupleOut",)


def test_cli_html_and_json(tmp_path: Path) -> None:
    page = tmp_path / "sig.html"
    res = runner.invoke(app, ["study", "signal", "resnet20", "-i", "4x3x8x8", "-q", "-o", str(page)])
    assert res.exit_code == 0, res.output
    sidecar = StudyResult.from_json((tmp_path / "sig.json").read_text())
    assert sidecar.models == ("resnet20", "plain20")
    text = page.read_text()
    assert 'class="plotly-graph-div"' in text and html.escape(study_findings(sidecar)[1]) in text
    assert html.escape(sidecar.command) in text
    out = tmp_path / "paths.json"
    res = runner.invoke(app, ["study", "paths", "resnet20", "-i", "2x3x8x8", "--samples", "1", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert isinstance(StudyResult.from_json(out.read_text()).records[0], PathsStudy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paths.json", "sig.html", "sig.json"]


@pytest.mark.parametrize(("args", "message"), [
    (["study", "bogus", "resnet20"], "unknown study"),
    (["study", "signal", "nosuchnet"], "unknown model"),
    (["study", "signal", "resnet20", "-o", "OUT/x.md"], "use .html or .json"),
    (["study", "shatter", "resnet20", "--points", "99999999999", "-o", "OUT/x.html"], "points = 99999999999"),
    (["study", "signal", "resnet20", "-o", "OUT/missing/x.html"], "does not exist"),
])
def test_cli_bad_input_one_line_exit_2_no_file(tmp_path: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, [a.replace("OUT", str(tmp_path)) for a in args])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_cli_interrupt_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import resviz.render.report.study_html as page

    def interrupted(_result: StudyResult) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(page, "render_study_html", interrupted)  # Ctrl-C while the page renders
    res = runner.invoke(app, ["study", "signal", "resnet20", "-i", "4x3x8x8", "-q", "-o", str(tmp_path / "s.html")])
    assert res.exit_code == 130
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_findings_without_output() -> None:
    res = runner.invoke(app, ["study", "signal", "resnet20", "-i", "4x3x8x8", "-q", "--no-twin"])
    assert res.exit_code == 0, res.output
    result = resviz.study("signal", "resnet20", input_size="4x3x8x8", twin=False)
    assert res.output.splitlines() == [f"- {s}" for s in study_findings(result)]
    res = runner.invoke(app, ["study", "signal", "resnet20", "-i", "4x3x8x8", "-q", "--no-twin", "-f", "json"])
    assert StudyResult.from_json(res.output).records == result.records
