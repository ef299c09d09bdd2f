"""Spec validation: every impossible value gets a one-line error naming it."""

from __future__ import annotations

import dataclasses

import pytest

from resviz.errors import ResvizError
from resviz.spec import ResNetSpec, load_spec_file
from resviz.zoo import get_spec


def test_round_trip_and_plain_twin() -> None:
    spec = get_spec("resnext50_32x4d")
    assert ResNetSpec.from_dict(spec.to_dict()) == spec
    assert spec.plain().shortcut.value == "none" and spec.plain().name == "plain_resnext50_32x4d"
    assert get_spec("plain56") == get_spec("resnet56").plain()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"layers": ()}, "at least one stage"),
        ({"layers": (2, 2, 2)}, "widths has 4 entries but layers has 3"),
        ({"widths": (64, -1, 256, 512)}, r"widths\[1\]"),
        ({"groups": 3}, "basic blocks support only groups=1"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_invalid_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ResvizError, match=message):
        dataclasses.replace(get_spec("resnet18"), **changes).validate()


def test_bad_enums_and_files(tmp_path: object) -> None:
    with pytest.raises(ResvizError, match="invalid stem 'mnist'"):
        ResNetSpec(name="x", block="basic", layers=(1,), widths=(8,), stem="mnist")
    with pytest.raises(ResvizError, match="missing required field"):
        ResNetSpec.from_dict({"name": "x", "block": "basic"})
    from pathlib import Path

    bad = Path(str(tmp_path)) / "bad.yaml"
    bad.write_text("layers: [1, 2\n")
    with pytest.raises(ResvizError, match="cannot parse spec file"):
        load_spec_file(bad)


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ResvizError, match=r"did you mean.*resnext50_32x4d"):
        get_spec("resnext50")


def test_name_and_preact_must_have_their_types() -> None:
    base = get_spec("resnet18").to_dict()
    with pytest.raises(ResvizError, match="preact = 'false'"):
        ResNetSpec.from_dict({**base, "preact": "false"})  # a truthy string must not build a preact net
    with pytest.raises(ResvizError, match="name = 5"):
        ResNetSpec.from_dict({**base, "name": 5})


def test_plain_twin_of_a_plain_spec_is_itself_and_derive_names_what_changed() -> None:
    from resviz.zoo import derive, skip_twin

    plain34 = get_spec("plain34")
    assert plain34.plain() is plain34 and get_spec("resnet34").plain() == plain34
    r50 = get_spec("resnet50")
    assert derive(r50, {}) is r50 and derive(r50, {"shortcut": "none"}) == r50.plain()
    assert derive(r50, {"layers": [1, 1, 1, 1]}).name == "resnet50-custom"
    assert derive(r50, {"layers": [1, 1, 1, 1], "name": "tiny"}).name == "tiny"
    assert skip_twin("plain_preact_resnet164") == "preact_resnet164" and skip_twin("resnet50") is None
