"""Reports carry the JSON's numbers: every table cell in HTML and Markdown matches the JSON."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from typing import Any

import pytest

from resviz.api import compare
from resviz.records import Comparison
from resviz.render.format import num
from resviz.render.report import render_html, render_markdown


@pytest.fixture(scope="module")
def result() -> Comparison:
    return compare(["resnet20", "plain20"], steps=2, batch=4, input_size="3x8x8", device="cpu",
                   seed=1).with_command("resviz compare resnet20 plain20 --steps 2")


@pytest.fixture(scope="module")
def data(result: Comparison) -> dict[str, Any]:
    return json.loads(result.to_json())


class _Tables(HTMLParser):
    """Collect every <table> as a list of rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, text: str) -> None:
        if self._cell is not None:
            self._cell.append(text)


def _md_tables(text: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if all(re.fullmatch(r"-+:?", c) for c in cells):
                continue
            if current is None:
                current = []
                tables.append(current)
            current.append(cells)
        else:
            current = None
    return tables


def _expected_headline(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    for m in data["models"]:
        losses = m["training"]["losses"]
        rows.append([
            m["name"], "yes" if m["has_skips"] else "no", num(m["depth"]), num(m["params"]),
            num(m["loss_init"]), num(m["grad_first"]), num(m["grad_last"]), num(m["headline"]),
            num(losses[-1]),
        ])
    return rows


def _expected_blocks(m: dict[str, Any]) -> list[list[str]]:
    return [
        [num(b["depth"]), b["name"], b["stage"], b["shortcut"], num(b["grad_main"]), num(b["grad_skip"]),
         num(b["grad_total"]), num(b["ratio"]), num(b["main_rms"]), num(b["skip_rms"])]
        for b in m["blocks"]
    ]


def _expected_stages(m: dict[str, Any]) -> list[list[str]]:
    return [
        [s["name"], num(s["blocks"]), num(s["grad_first"]), num(s["grad_last"]), num(s["attenuation"]),
         num(s["mean_ratio"]), num(s["mean_act_std"])]
        for s in m["stages"]
    ]


def _check(tables: list[list[list[str]]], data: dict[str, Any]) -> None:
    headline = tables[0]
    assert headline[0][0] == "model"
    assert [row[:9] for row in headline[1:]] == _expected_headline(data)
    bodies = [t[1:] for t in tables]
    for m in data["models"]:
        assert _expected_blocks(m) in bodies
        assert _expected_stages(m) in bodies


def test_markdown_numbers_equal_json(result: Comparison, data: dict[str, Any]) -> None:
    text = render_markdown(result)
    _check(_md_tables(text), data)
    assert text.index("## Headline") < text.index("## Per stage") < text.index("## Run settings")


def test_html_numbers_equal_json(result: Comparison, data: dict[str, Any]) -> None:
    page = render_html(result)
    parser = _Tables()
    parser.feed(page)
    _check(parser.tables, data)


def test_json_numbers_are_the_analysis_numbers(result: Comparison, data: dict[str, Any]) -> None:
    for m, d in zip(result.models, data["models"], strict=True):
        assert d["headline"] == m.headline and d["grad_first"] == m.grad_first
        assert [b["grad_skip"] for b in d["blocks"]] == [b.grad_skip for b in m.blocks]
        assert d["trace"]["loss"] == m.trace.loss


def test_html_is_self_contained_and_ordered(result: Comparison) -> None:
    page = render_html(result)
    # No external resource: every <script> tag is inline (plotly.js included).
    assert re.findall(r"<script[^>]*>", page) and not any("src=" in t for t in re.findall(r"<script[^>]*>", page))
    assert "Plotly.newPlot" in page and len(page) > 3_000_000  # plotly.js inlined
    pos = [page.index(f'<h2 id="{s}">') for s in ("headline", "figures", "stages", "diagrams", "settings")]
    assert pos == sorted(pos)
    assert "resviz compare resnet20 plain20 --steps 2" in page
    assert "torch version" in page and "seed" in page
    for fig in ("fig-grad-depth", "fig-response-std", "fig-loss", "fig-heatmap-0-grad_total"):
        assert f'id="{fig}"' in page


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_html_embeds_svg_diagrams(result: Comparison) -> None:
    page = render_html(result)
    assert page.count("<svg") >= 3  # resnet20: gradient-flow and stages; plain20: stages
    assert "<?xml" not in page


def test_diagrams_fall_back_to_a_note_without_dot(result: Comparison, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    page = render_html(result)
    assert "Graphviz&#x27;s dot program was not found: install graphviz to embed this diagram" in page
    assert "<svg" not in page.split('<h2 id="diagrams">')[1].split('<h2 id="settings">')[0]


def test_a_failing_dot_run_becomes_a_note(result: Comparison, monkeypatch: pytest.MonkeyPatch) -> None:
    import graphviz

    def fail(*_: object, **__: object) -> bytes:
        raise graphviz.CalledProcessError(1, ["dot"], stderr=b"Error: out of memory\nmore")

    monkeypatch.setattr(graphviz.Digraph, "pipe", fail)
    page = render_html(result)
    assert "Graphviz&#x27;s dot failed: Error: out of memory" in page and "more" not in page.split("dot failed")[1][:40]


def test_figures_plot_the_json_numbers(result: Comparison, data: dict[str, Any]) -> None:
    from resviz.render.report import plots

    figs = dict(plots.figures(result))
    grad = figs["grad-depth"]
    for trace, m in zip(grad.data, data["models"], strict=True):
        assert list(trace.y) == [b["grad_total"] for b in m["blocks"]]
    loss = figs["loss"]
    assert list(loss.data[0].y) == data["models"][0]["training"]["losses"]
    std = figs["response-std"]
    assert list(std.data[0].y) == [a["std"] for a in data["models"][0]["act_std"]]
