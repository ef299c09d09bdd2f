"""Records and diagrams in Jupyter: compact, well-formed, escaped, bounded HTML and SVG.

The records are read from the files in tests/data/v0 (real resnet20 measurements) or built by hand,
so these tests need neither PyTorch nor IPython and run in well under a second.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import graphviz
import pytest

from resviz.records import (
    Comparison,
    LayerRecord,
    MonitorSeries,
    ReconcileRow,
    Reconciliation,
    StageRecord,
    Summary,
    Trace,
)
from resviz.records.display import NotebookRepr, view_of
from resviz.render import notebook
from resviz.render.diagrams.fitted import FittedDigraph
from resviz.render.format import human, num
from resviz.render.svg import MAX_POINTS, NOTEBOOK_WIDTH_PT, Series, fit_svg, line_chart

ROOT = Path(__file__).resolve().parent.parent
V0 = Path(__file__).parent / "data" / "v0"
EVIL = "<script>alert('x')</script>"


def _load(name: str) -> dict[str, Any]:
    return json.loads((V0 / name).read_text())


@pytest.fixture(scope="module")
def summary() -> Summary:
    return Summary.from_dict(_load("summary-resnet20.json"))


@pytest.fixture(scope="module")
def trace() -> Trace:
    return Trace.from_dict(_load("trace-resnet20.json"))


@pytest.fixture(scope="module")
def series() -> MonitorSeries:
    return MonitorSeries.from_dict(_load("monitor-resnet20.json"))


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return Comparison.from_dict(_load("comparison-resnet20-plain20.json"))


def _reconciliation(model: str = "resnet20", explanation: str = "fvcore counts BN") -> Reconciliation:
    row = ReconcileRow("Conv2d", 19, 40_000_000, 0, 40_000_000, 40_000_000, 80_000_000, explanation)
    totals = {"resviz_macs": 40_000_000, "resviz_elementwise": 0, "fvcore": 40_000_000, "torchinfo": 40_000_000,
              "flop_counter": 80_000_000}
    return Reconciliation(model, (1, 3, 32, 32), (row,), totals, {"torch": "2.13"})


class _Printer:
    """Stands in for IPython's pretty printer: collects what ``_repr_pretty_`` writes."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def text(self, part: str) -> None:
        self.parts.append(part)


def _pretty(record: object) -> str:
    printer = _Printer()
    record._repr_pretty_(printer, False)  # type: ignore[attr-defined]
    return "".join(printer.parts)


def _html(record: object) -> str:
    out = record._repr_html_()  # type: ignore[attr-defined]
    assert isinstance(out, str) and out
    return out


class _Headline(HTMLParser):
    """The ``label -> value`` pairs of the first table marked ``resviz-headline``."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: dict[str, str] = {}
        self._inside = self._done = False
        self._row: list[str] = []
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("class", "resviz-headline") in attrs and not self._done:
            self._inside = True
        elif self._inside and tag in ("th", "td"):
            self._cell = ""

    def handle_endtag(self, tag: str) -> None:
        if not self._inside:
            return
        if tag in ("th", "td") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self.pairs[self._row[0]] = self._row[1]
            self._row = []
        elif tag == "table":
            self._inside, self._done = False, True

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell += data


def headline(html_text: str) -> dict[str, str]:
    parser = _Headline()
    parser.feed(html_text)
    return parser.pairs


def _texts(html_text: str) -> list[str]:
    """Every text node of a fragment, unescaped, in order (parsed as XML: it must be well-formed)."""
    return [t for t in ET.fromstring(html_text).itertext() if t.strip()]


# Well-formed, escaped ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["summary", "trace", "series", "comparison"])
def test_each_view_is_well_formed_xhtml(name: str, request: pytest.FixtureRequest) -> None:
    html_text = _html(request.getfixturevalue(name))
    root = ET.fromstring(html_text)  # raises on any unclosed tag or bad entity
    assert root.tag == "div" and root.get("class") == "resviz-record"
    assert "<script" not in html_text


def test_the_reconciliation_view_is_well_formed() -> None:
    root = ET.fromstring(_html(_reconciliation()))
    assert "fvcore counts BN" in list(root.itertext())


def test_names_from_users_are_escaped(summary: Summary, trace: Trace, series: MonitorSeries) -> None:
    layers = (dataclasses.replace(summary.layers[0], name=EVIL, type="<b>Conv</b>"), *summary.layers[1:])
    blocks = (dataclasses.replace(trace.blocks[0], name=EVIL), *trace.blocks[1:])
    records = [
        dataclasses.replace(summary, model=EVIL, layers=layers, notes=(EVIL,)),
        dataclasses.replace(trace, model=EVIL, blocks=blocks, notes=(EVIL,)),
        dataclasses.replace(series, model=EVIL),
        _reconciliation(EVIL, explanation=EVIL),
    ]
    for record in records:
        html_text = _html(record)
        assert "<script" not in html_text and "<b>Conv" not in html_text
        assert "&lt;script&gt;" in html_text
        assert EVIL in _texts(html_text)  # shown as text, exactly


def test_model_names_in_a_comparison_and_its_chart_legend_are_escaped(comparison: Comparison) -> None:
    models = (dataclasses.replace(comparison.models[0], name=EVIL), *comparison.models[1:])
    html_text = _html(dataclasses.replace(comparison, models=models))
    assert "<script" not in html_text
    svg = ET.fromstring(html_text).find(".//{http://www.w3.org/2000/svg}svg")
    assert svg is not None and EVIL in list(svg.itertext())


def test_a_spec_named_like_a_script_shows_as_text() -> None:
    import resviz

    spec = dataclasses.replace(resviz.get_spec("resnet20"), name=EVIL)
    html_text = _html(resviz.summarize(spec, input_size="1x3x32x32"))
    assert "<script" not in html_text and headline(html_text)["model"] == EVIL


# Headline numbers --------------------------------------------------------------------------------


def test_summary_headline_numbers_are_the_records_fields(summary: Summary) -> None:
    h = headline(_html(summary))
    assert list(h)[:4] == ["model", "input", "parameters", "MACs"]
    assert h["model"] == summary.model and h["input"] == "1x3x32x32"
    assert int(h["parameters"].split(" ")[0].replace(",", "")) == summary.total_params
    assert h["MACs"] == f"{human(summary.total_macs)} ({human(summary.total_flops)} FLOPs)"
    assert h["activations"] == f"{human(summary.activation_bytes)}B"
    assert h["layers / blocks"] == f"{len(summary.layers)} / {len(summary.blocks)}"


def test_the_stage_table_has_one_row_per_stage(summary: Summary) -> None:
    texts = _texts(_html(summary))
    for st in summary.stages:
        i = texts.index(st.name)
        assert texts[i + 2: i + 4] == [str(st.num_blocks), num(st.params)]


def test_trace_headline_numbers_are_the_records_fields(trace: Trace) -> None:
    h = headline(_html(trace))
    assert trace.loss is not None and float(h["loss"]) == pytest.approx(trace.loss, rel=1e-3)
    first, last = trace.blocks[0].grad_total, trace.blocks[-1].grad_total
    assert first is not None and last is not None
    assert float(h["∇ first / last block"]) == pytest.approx(first / last, rel=1e-2)
    assert h["first NaN/Inf layer"] == "none"
    assert h["layers / blocks"] == f"{len(trace.layers)} / {len(trace.blocks)}"


def test_the_first_non_finite_layer_is_named(trace: Trace) -> None:
    layers = list(trace.layers)
    layers[5] = dataclasses.replace(layers[5], nan_count=3)
    layers[9] = dataclasses.replace(layers[9], inf_count=1)
    h = headline(_html(dataclasses.replace(trace, layers=tuple(layers))))
    assert h["first NaN/Inf layer"] == f"{layers[5].label} (3 NaN, 0 Inf)"


def test_a_trace_shows_gradient_norms_per_block_as_svg(trace: Trace) -> None:
    root = ET.fromstring(_html(trace))
    svg = root.find(".//{http://www.w3.org/2000/svg}svg")
    assert svg is not None
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 3  # total, main, skip
    assert all(len(p.get("points", "").split()) == len(trace.blocks) for p in lines)


def test_monitor_series_headline_and_loss_curve(series: MonitorSeries) -> None:
    html_text = _html(series)
    h = headline(html_text)
    assert h["model"] == series.model
    assert h["snapshots"].startswith(f"{len(series.snapshots)} (every {series.every} steps)")
    first, last = (float(v) for v in h["loss (first → last)"].split(" → "))
    assert first == pytest.approx(series.loss_values[0], rel=1e-3)
    assert last == pytest.approx(series.loss_values[-1], rel=1e-3)
    assert "<polyline" in html_text


def test_comparison_rows_are_the_models(comparison: Comparison) -> None:
    texts = _texts(_html(comparison))
    for m in comparison.models:
        i = texts.index(m.name, texts.index("final loss"))
        assert texts[i + 1] == ("yes" if m.has_skips else "no") and texts[i + 2] == str(m.depth)


def test_ipython_text_is_one_line_of_headline_numbers(
    summary: Summary, trace: Trace, series: MonitorSeries, comparison: Comparison,
) -> None:
    for record in (summary, trace, series, comparison, _reconciliation()):
        text = _pretty(record)
        kind = type(record).__name__
        assert text.startswith(f"{kind}(model: ") or text.startswith(f"{kind}(models: ")
        assert "\n" not in text and len(text) < 600
    assert len(repr(comparison)) > 100_000  # what a notebook would otherwise store
    assert f"parameters: {num(summary.total_params)}" in _pretty(summary)


def test_ipython_shows_html_and_short_text(summary: Summary, comparison: Comparison) -> None:
    formatters = pytest.importorskip("IPython.core.formatters")
    for record in (summary, comparison):
        data, _meta = formatters.DisplayFormatter().format(record)
        assert data["text/html"] == _html(record) and data["text/plain"] == _pretty(record)


# Bounded size ------------------------------------------------------------------------------------


def _big_summary(n: int = 1000) -> Summary:
    layers = tuple(
        LayerRecord(f"layer{i}.conv", "Conv2d", (1, 8, 4, 4), (1, 8, 4, 4), 576, 9216, 0, 512) for i in range(n)
    )
    stage = StageRecord("conv2_x", (1, 8, 4, 4), n // 2, 576 * n, 9216 * n, 0, 3, 1)
    return Summary("deep", (1, 8, 4, 4), 576 * n, 576 * n, 9216 * n, 0, 512 * n, 4 * 576 * n, layers, (), (stage,))


def test_a_thousand_layer_summary_shows_its_first_and_last_rows() -> None:
    html_text = _html(_big_summary())
    assert len(html_text) < 12_000
    texts = _texts(html_text)
    assert "layer0.conv" in texts and "layer999.conv" in texts and "layer500.conv" not in texts
    assert f"… {1000 - 2 * notebook.EDGE_ROWS:,} more rows …" in texts


def test_a_long_trace_and_series_stay_small(trace: Trace, series: MonitorSeries) -> None:
    blocks = tuple(dataclasses.replace(trace.blocks[i % len(trace.blocks)], name=f"b{i}") for i in range(1500))
    html_text = _html(dataclasses.replace(trace, blocks=blocks))
    assert len(html_text) < 40_000
    for line in ET.fromstring(html_text).iter("{http://www.w3.org/2000/svg}polyline"):
        assert len(line.get("points", "").split()) <= MAX_POINTS
    long = dataclasses.replace(series, loss_steps=tuple(range(20_000)), loss_values=tuple(1.0 / (1 + s) for s in
                                                                                          range(20_000)))
    assert len(_html(long)) < 20_000


def test_many_notes_are_cut_short(summary: Summary) -> None:
    notes = tuple(f"note {i}" for i in range(500))
    texts = _texts(_html(dataclasses.replace(summary, notes=notes)))
    assert "note 0" in texts and "note 499" not in texts
    assert f"… {500 - notebook.MAX_NOTES} more notes" in texts


def test_empty_and_unmeasured_records_still_show(trace: Trace) -> None:
    no_backward = dataclasses.replace(
        trace, loss=None, blocks=tuple(dataclasses.replace(b, grad_main=None, grad_skip=None, grad_total=None)
                                       for b in trace.blocks),
    )
    records = [no_backward, dataclasses.replace(trace, blocks=(), layers=()), MonitorSeries("m", 5, ())]
    for record in records:
        root = ET.fromstring(_html(record))
        assert root.find(".//{http://www.w3.org/2000/svg}svg") is None  # nothing to draw, no empty chart
    assert headline(_html(no_backward))["loss"] == "—"


# The hook ----------------------------------------------------------------------------------------


def test_a_record_without_a_registered_view_falls_back_to_repr() -> None:
    @dataclasses.dataclass(frozen=True)
    class Unseen(NotebookRepr):
        x: int

    assert view_of(Unseen) is None and Unseen(1)._repr_html_() is None
    assert _pretty(Unseen(1)) == repr(Unseen(1))


def test_every_displayable_record_has_a_view() -> None:
    for kind in (Summary, Trace, MonitorSeries, Comparison, Reconciliation):
        assert view_of(kind) is notebook.VIEWS[kind]


def test_import_resviz_loads_no_notebook_or_plotting_library() -> None:
    code = (
        "import sys, resviz\n"
        "from resviz.records import MonitorSeries\n"
        "html = MonitorSeries('m', 1, (), (1, 2), (2.0, 1.0))._repr_html_()\n"
        "assert html and '<polyline' in html, html\n"
        "bad = sorted(m for m in ('IPython', 'ipykernel', 'plotly', 'pandas', 'torch', 'graphviz', 'rich')"
        " if m in sys.modules)\n"
        "print(bad); sys.exit(bool(bad))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


# SVG ---------------------------------------------------------------------------------------------


def test_a_chart_breaks_its_line_at_missing_and_non_positive_values() -> None:
    ys = [1.0, 2.0, None, 4.0, float("nan"), 0.0, 8.0, 16.0]
    svg = line_chart([Series("g", list(range(8)), ys, "#000000")], "t", "x", "y", log_y=True)
    root = ET.fromstring(svg)
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    dots = root.findall("{http://www.w3.org/2000/svg}circle")
    assert [len(p.get("points", "").split()) for p in lines] == [2, 2] and len(dots) == 1


def test_a_chart_with_nothing_to_draw_is_empty() -> None:
    assert line_chart([Series("g", [1, 2], [None, float("nan")], "#000000")], "t", "x", "y") == ""


def _size(svg: str) -> tuple[float, float]:
    tag = re.search(r"<svg\b[^>]*>", svg)
    assert tag is not None
    width = re.search(r'\swidth="([0-9.]+)pt"', tag.group(0))
    height = re.search(r'\sheight="([0-9.]+)pt"', tag.group(0))
    assert width and height
    return float(width.group(1)), float(height.group(1))


def test_fit_svg_scales_a_wide_drawing_down_and_keeps_a_small_one() -> None:
    wide = '<svg width="2000pt" height="500pt" viewBox="0.00 0.00 2000.00 500.00" xmlns="http://www.w3.org/2000/svg"></svg>'
    fitted = fit_svg(wide)
    ET.fromstring(fitted)
    assert _size(fitted) == (NOTEBOOK_WIDTH_PT, pytest.approx(NOTEBOOK_WIDTH_PT / 4, abs=1))
    assert 'viewBox="0.00 0.00 2000.00 500.00"' in fitted and "max-width:100%" in fitted
    small = wide.replace("2000pt", "300pt")
    assert _size(fit_svg(small)) == (300, 500)


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_a_wide_diagram_fits_the_cell() -> None:
    g = FittedDigraph(graph_attr={"rankdir": "LR"})
    for i in range(40):
        g.edge(f"node number {i}", f"node number {i + 1}")
    natural = _size(g.pipe(format="svg", encoding="utf-8"))
    assert natural[0] > NOTEBOOK_WIDTH_PT
    bundle = g._repr_mimebundle_()
    svg = bundle["image/svg+xml"]
    assert isinstance(svg, str)
    width, height = _size(svg)
    assert width == pytest.approx(NOTEBOOK_WIDTH_PT, abs=1)
    assert height == pytest.approx(natural[1] * NOTEBOOK_WIDTH_PT / natural[0], abs=0.1)
    assert set(g._repr_mimebundle_(include=["image/png"])) == {"image/png"}


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_ipython_shows_a_diagram_as_fitted_svg(summary: Summary) -> None:
    formatters = pytest.importorskip("IPython.core.formatters")
    import resviz

    data, _meta = formatters.DisplayFormatter().format(resviz.diagram(summary, view="overview"))
    assert set(data) == {"image/svg+xml", "text/plain"}
    assert "max-width:100%" in data["image/svg+xml"]


def test_resviz_diagram_returns_a_fitted_digraph(summary: Summary) -> None:
    import resviz

    d = resviz.diagram(summary, view="overview")
    assert isinstance(d, graphviz.Digraph) and isinstance(d, FittedDigraph)



def test_extreme_values_and_control_characters_still_show_well_formed() -> None:
    """Gradients near the largest float (a log axis padded past it) and a name with control
    characters, which XML forbids: the view is still well-formed XHTML."""
    data = _load("trace-resnet20.json")
    for b in data["blocks"]:
        b["grad_total"] = 1.7e308
    data["model"] = "a\x00b\x0bc"
    page = _html(Trace.from_dict(data))
    ET.fromstring(page)
    assert "a\ufffdb\ufffdc" in page


def test_a_diagram_without_graphviz_dot_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from resviz.render.diagrams.fitted import NO_DOT

    def no_dot(*_a: Any, **_k: Any) -> Any:
        raise graphviz.ExecutableNotFound(("dot",))

    monkeypatch.setattr(graphviz.Digraph, "_repr_mimebundle_", no_dot)
    bundle = FittedDigraph()._repr_mimebundle_()
    assert bundle == {"text/plain": NO_DOT} and "\n" not in NO_DOT
