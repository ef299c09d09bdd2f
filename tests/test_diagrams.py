"""Diagrams: golden DOT for every view, structure drawn from the model, errors, colouring."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from resviz.api import summarize
from resviz.errors import ResvizError
from resviz.public import diagram
from resviz.records import BlockStats, Summary
from resviz.render.diagrams import VIEWS
from resviz.spec import ResNetSpec
from resviz.zoo import get_spec

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("RESVIZ_UPDATE_GOLDEN") == "1"
HAS_DOT = shutil.which("dot") is not None


@dataclass(frozen=True)
class FakeLayer:
    name: str
    std: float
    call: int = 1


@dataclass(frozen=True)
class FakeTrace:
    blocks: tuple[BlockStats, ...]
    layers: tuple[FakeLayer, ...] = ()


@functools.cache
def summary(name: str) -> Summary:
    return summarize(name)


def fake_trace(s: Summary) -> FakeTrace:
    """Deterministic numbers: the main path's gradient grows with depth, the skip's stays put."""
    blocks = tuple(
        BlockStats(b.name, b.stage, i, b.shortcut, 0.5, 1.0, 0.01 * (i + 1), 0.05, 0.05 + 0.01 * (i + 1))
        for i, b in enumerate(s.blocks)
    )
    layers = tuple(FakeLayer(lr.name, 0.25 + 0.001 * i) for i, lr in enumerate(s.layers))
    return FakeTrace(blocks, layers)


CASES = [
    ("resnet20", "overview", {}),
    ("resnet20", "basic-block", {}),
    ("resnet20", "stages", {}),
    ("resnet20", "dimensions", {}),
    ("resnet20", "skip-types", {}),
    ("resnet20", "gradient-flow", {"trace": True}),
    ("resnet20", "layers", {}),
    ("resnet20", "layers", {"depth": 1}),
    ("resnet20", "layers", {"depth": 2, "color_by": "params"}),
    ("resnet20", "layers", {"color_by": "grad-ratio", "trace": True}),
    ("resnet152", "overview", {"color_by": "macs"}),
    ("resnet152", "bottleneck", {}),
    ("resnet152", "stages", {}),
    ("resnet152", "dimensions", {}),
    ("resnet152", "skip-types", {}),
    ("resnet152", "gradient-flow", {"trace": True}),
    ("resnet152", "gradient-flow", {}),
    ("resnet152", "layers", {}),
    ("preact_resnet164", "bottleneck", {}),
    ("preact_resnet18", "basic-block", {"color_by": "std", "trace": True}),
]


def _case_id(model: str, view: str, opts: dict[str, object]) -> str:
    extra = "".join(f"-{k}{'' if v is True else v}" for k, v in sorted(opts.items()))
    return f"{model}-{view}{extra}".replace("_by", "").replace("color", "c")


def _draw(model: str, view: str, opts: dict[str, object]) -> str:
    s = summary(model)
    kw = dict(opts)
    trace = fake_trace(s) if kw.pop("trace", False) else None
    return str(diagram(s, view=view, trace=trace, **kw).source)  # type: ignore[arg-type]


@pytest.mark.parametrize(("model", "view", "opts"), CASES, ids=[_case_id(*c) for c in CASES])
def test_golden_dot(model: str, view: str, opts: dict[str, object]) -> None:
    path = GOLDEN / f"{_case_id(model, view, opts)}.dot"
    source = _draw(model, view, opts)
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"missing golden file {path.name}: run with RESVIZ_UPDATE_GOLDEN=1")
        path.write_text(source, encoding="utf-8")
    assert source == path.read_text(encoding="utf-8")


def test_every_view_has_golden_files_for_a_small_and_a_large_preset() -> None:
    covered = {(m, v) for m, v, _ in CASES}
    for view in VIEWS:
        small = ("resnet20", view) in covered or (view == "bottleneck" and ("preact_resnet164", view) in covered)
        large = ("resnet152", view) in covered or view == "basic-block"  # resnet152 has no basic blocks
        assert small and large, view


def test_changing_the_spec_changes_the_picture() -> None:
    base = get_spec("resnet20")
    deeper = dataclasses.replace(base, name="custom", layers=(5, 5, 5))
    a = diagram(base, view="stages").source
    b = diagram(deeper, view="stages").source
    assert "9 basic blocks" not in a and "3 basic blocks" in a
    assert "5 basic blocks" in b
    wide = dataclasses.replace(base, name="wide", widths=(32, 64, 128))
    assert "32x32x32" in diagram(wide, view="dimensions").source


def test_basic_block_is_post_activation_and_preact_is_bn_relu_conv() -> None:
    post = diagram("resnet20", view="basic-block").source
    assert "conv1 -> bn1" in post and "bn1 -> relu1" in post and "add -> relu2" in post
    pre = diagram("preact_resnet18", view="basic-block", block="layer2.1").source
    assert "bn1 -> relu1" in pre and "relu1 -> conv1" in pre
    assert "add -> output" in pre  # nothing after the addition (He et al. 2016)


def test_preact_projection_forks_after_the_shared_preactivation() -> None:
    src = diagram("preact_resnet164", view="bottleneck", block="layer1.0").source
    assert re.search(r'relu1 -> "downsample\.0"', src)
    assert not re.search(r'input -> "downsample\.0"', src)


def test_skip_edges_differ_by_kind() -> None:
    src20 = diagram("resnet20", view="skip-types").source
    assert "style=dashed" in src20 and "zero-pad shortcut" in src20
    src50 = diagram("resnet50", view="skip-types").source
    assert "projection shortcut" in src50 and "identity shortcut" in src50
    assert "style=bold" in src50 and "style=solid" in src50


def test_edges_carry_shapes() -> None:
    src = diagram("resnet50", view="overview").source
    for shape in ("224x224x3", "112x112x64", "56x56x256", "7x7x2048", "1x1x2048"):
        assert f'label=" {shape}"' in src


def test_layers_view_folds_repeated_blocks() -> None:
    src = diagram("resnet152", view="layers").source
    assert "layer3.1 - layer3.35 (x35)" in src
    assert "layer3.7.conv1" not in src
    src = diagram("resnet152", view="layers", depth=2).source
    assert "layer2.1 - layer2.7 (x7)" in src and '"layer1.0.conv1"' not in src
    src = diagram("resnet20", view="layers", depth=1).source
    assert "layer1 (conv2_x)" in src and "layer1.0" not in src


def test_layers_view_of_preact_resnet1001_is_small_and_fast() -> None:
    start = time.perf_counter()
    g = diagram("preact_resnet1001", view="layers")
    src = g.source
    assert "(x110)" in src
    assert src.count("->") < 200  # 3338 layers, drawn as a few dozen nodes
    if HAS_DOT:
        assert g.pipe(format="svg").startswith(b"<?xml")
    assert time.perf_counter() - start < 10


def test_color_by_metrics_and_legend() -> None:
    src = diagram("resnet20", view="layers", color_by="macs").source
    assert "MACs (conv + linear)" in src
    assert "#8C2D04" in src  # the largest value gets the darkest colour
    with pytest.raises(ResvizError, match="needs a trace"):
        diagram("resnet20", view="layers", color_by="std")
    with pytest.raises(ResvizError, match="unknown color-by"):
        diagram("resnet20", color_by="flops")
    s = summary("resnet20")
    src = diagram(s, view="gradient-flow", color_by="grad-ratio", trace=fake_trace(s)).source
    assert "grad ratio |main| / |skip|" in src and "main 0.01" in src and "skip 0.05" in src


def test_gradient_flow_without_trace_says_so() -> None:
    src = diagram("resnet20", view="gradient-flow").source
    assert "norms not measured" in src and "style=dotted" in src


@pytest.mark.parametrize(("model", "view", "message"), [
    ("resnet50", "basic-block", "no basic blocks"),
    ("resnet20", "bottleneck", "no bottleneck blocks"),
    ("plain34", "skip-types", "needs residual blocks"),
    ("plain56", "gradient-flow", "needs residual blocks"),
    ("resnet20", "layerz", "did you mean layers"),
])
def test_impossible_requests_raise_one_line_errors(model: str, view: str, message: str) -> None:
    with pytest.raises(ResvizError, match=message) as info:
        diagram(model, view=view)
    assert "\n" not in str(info.value)


def test_plain_models_still_draw_whole_network_views() -> None:
    src = diagram("plain34", view="layers").source
    assert "no skip" in src and "add" not in src


def test_summary_and_spec_inputs_agree() -> None:
    spec = ResNetSpec.from_dict(get_spec("resnet20").to_dict())
    assert diagram(spec, view="stages").source == diagram(summary("resnet20"), view="stages").source
    with pytest.raises(ResvizError):
        diagram(summary("resnet20"), input_size="1x3x64x64")


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz dot not installed")
def test_resnet50_svg_shows_stage_labels_and_shapes() -> None:
    svg = diagram("resnet50", view="dimensions", input_size="1x3x224x224").pipe(format="svg").decode()
    for text in ("112x112x64", "56x56x256", "28x28x512", "14x14x1024", "7x7x2048", "1x1x2048", "1000"):
        assert text in svg
    stages_svg = diagram("resnet50", view="stages").pipe(format="svg").decode()
    for stage, n in (("conv2_x", 3), ("conv3_x", 4), ("conv4_x", 6), ("conv5_x", 3)):
        assert f"{stage} (layer" in stages_svg and f"{n} bottleneck blocks" in stages_svg
