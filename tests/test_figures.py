"""Plotly figures: they must show the numbers of the records they are given, in the shared theme."""

from __future__ import annotations

import math
from dataclasses import dataclass

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from resviz.api import summarize
from resviz.records import Summary
from resviz.render import figures, theme


@pytest.fixture(scope="module")
def r18() -> Summary:
    return summarize("resnet18")


@dataclass(frozen=True)
class Layer:
    name: str
    type: str
    std: float
    rms: float
    mean: float = 0.0
    min: float = -1.0
    max: float = 1.0
    zero_fraction: float = 0.0
    hist_edges: tuple[float, ...] = (-1.0, 0.0, 1.0, 3.0)
    hist_counts: tuple[int, ...] = (5, 7, 2)


@dataclass(frozen=True)
class Block:
    name: str
    grad_main: float | None
    grad_skip: float | None
    grad_total: float | None


def _children_sum(fig: go.Figure) -> dict[str, int]:
    t = fig.data[0]
    sums: dict[str, int] = {}
    for parent, value in zip(t.parents, t.values, strict=True):
        if parent:
            sums[parent] = sums.get(parent, 0) + value
    return sums


@pytest.mark.parametrize("metric", ["macs", "params"])
def test_treemap_root_is_the_model_total_and_children_add_up(r18: Summary, metric: str) -> None:
    fig = figures.cost_hierarchy(r18, metric, "treemap")
    t = fig.data[0]
    assert isinstance(t, go.Treemap)
    assert t.branchvalues == "total"
    assert list(t.ids).count(r18.model) == 1 and len(set(t.ids)) == len(t.ids)
    values = dict(zip(t.ids, t.values, strict=True))
    assert values[r18.model] == getattr(r18, f"total_{metric}")
    # With branchvalues="total" Plotly refuses to draw a parent smaller than its children.
    for parent, total in _children_sum(fig).items():
        assert total <= values[parent], parent
    stage_ids = [i for i, p in zip(t.ids, t.parents, strict=True) if p == r18.model]
    stage_values = {s.name: getattr(s, metric) for s in r18.stages if getattr(s, metric)}
    assert {i.split("/")[-1]: values[i] for i in stage_ids} == stage_values


def test_sunburst_and_layer_colours(r18: Summary) -> None:
    fig = figures.cost_hierarchy(r18, "params", "sunburst")
    t = fig.data[0]
    assert isinstance(t, go.Sunburst)
    conv_leaf = t.ids.index(f"{r18.model}/conv1/conv1")
    assert t.marker.colors[conv_leaf] == theme.LAYER_COLORS["conv"]
    assert fig.layout.font.family == theme.FONT
    assert fig.layout.template == pio.templates[theme.PLOTLY_TEMPLATE]


def test_cost_figures_reject_unknown_choices(r18: Summary) -> None:
    with pytest.raises(ValueError, match="metric"):
        figures.cost_hierarchy(r18, "flops")
    with pytest.raises(ValueError, match="level"):
        figures.cost_bars(r18, "macs", "layer")


def test_bars_per_stage_and_block(r18: Summary) -> None:
    stage = figures.cost_bars(r18, "macs", "stage").data[0]
    assert list(stage.x) == [s.name for s in r18.stages]
    assert list(stage.y) == [s.macs for s in r18.stages]
    block = figures.cost_bars(r18, "params", "block").data[0]
    assert list(block.x) == [b.name for b in r18.blocks]
    assert sum(block.y) == sum(b.params for b in r18.blocks)


def test_activation_depth_lines_filter_and_nan_gaps() -> None:
    layers = [Layer("conv1", "Conv2d", 1.0, 1.5), Layer("bn1", "BatchNorm2d", math.nan, 1.0),
              Layer("relu", "ReLU", 0.5, 0.7)]
    fig = figures.activation_depth(layers, ["std", "rms"])
    assert [t.name for t in fig.data] == ["std", "rms"]
    assert list(fig.data[0].y) == [1.0, None, 0.5]
    assert list(fig.data[0].marker.color) == [theme.LAYER_COLORS[k] for k in ("conv", "norm", "act")]
    only_act = figures.activation_depth(layers, ["rms"], kinds=["act"])
    assert list(only_act.data[0].x) == [2] and list(only_act.data[0].y) == [0.7]


def test_histogram_spans_the_bin_edges() -> None:
    bar = figures.activation_histogram(Layer("relu", "ReLU", 1.0, 1.0)).data[0]
    assert list(bar.x) == [-0.5, 0.5, 2.0]
    assert list(bar.width) == [1.0, 1.0, 2.0]
    assert list(bar.y) == [5, 7, 2]


def test_gradient_flow_log_scale_with_plain_overlay() -> None:
    blocks = [Block("layer1.0", 1.0, 2.0, 2.5), Block("layer1.1", 0.0, 3.0, 3.0), Block("layer2.0", None, None, None)]
    plain = [Block("layer1.0", 1e-3, 0.0, 1e-3), Block("layer1.1", 1e-2, 0.0, 1e-2)]
    fig = figures.gradient_flow(blocks, plain, model="resnet8", plain_model="plain8")
    assert fig.layout.yaxis.type == "log"
    assert [t.name for t in fig.data] == ["main path", "skip path", "total", "plain8: total"]
    main, skip, _total, twin = fig.data
    assert main.line.color == theme.MAIN_COLOR and skip.line.color == theme.SKIP_COLOR
    assert list(main.y) == [1.0, None, None]  # zero and missing values cannot sit on a log axis
    assert list(twin.x) == ["layer1.0", "layer1.1"] and list(twin.y) == [1e-3, 1e-2]
    assert len(figures.gradient_flow(blocks).data) == 3
