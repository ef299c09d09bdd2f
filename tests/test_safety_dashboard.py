"""Every dashboard URL parameter survives a real URL round trip and really changes the view.

A parameter that ``parse_params`` silently drops (falls back to the default without a problem
report) would make a shared link open a different view than the one shared.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from resviz.cli.common import resolve_cli_spec
from resviz.dashboard import PAGES
from resviz.dashboard.state import VIEW_KEYS, ViewState, defaults, parse_params, to_params

MODEL = "resnet56"

#: One non-default value per view key, chosen here (not read from the state module's tables).
CHANGED: dict[str, Any] = {
    "block": "bottleneck",
    "layers": "3,4,5",
    "widths": "8,16,32",
    "groups": 2,
    "wpg": 32,
    "shortcut": "C",
    "preact": True,
    "stem": "imagenet",
    "input": 48,
    "tsize": 24,
    "batch": 3,
    "device": "cpu",
    "dtype": "bfloat16",
    "seed": 1234,
    "page": "Gradient flow",
}


def _url(params: dict[str, str]) -> str:
    return "http://127.0.0.1:8501/?" + urlencode(params)


def _from_url(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def test_the_table_covers_every_view_key() -> None:
    assert set(CHANGED) | {"model"} == set(VIEW_KEYS)
    assert CHANGED["page"] in PAGES


@pytest.mark.parametrize("key", sorted(CHANGED))
def test_each_parameter_round_trips_through_a_url(key: str) -> None:
    """Write one changed value into a URL, parse it back: that value, and nothing else, changes."""
    base = defaults(MODEL)
    assert base[key] != CHANGED[key], key
    values = {**base, key: CHANGED[key]}
    params = to_params(values)
    assert key in params, f"{key} is not written to the URL"
    parsed, problems = parse_params(_from_url(_url(params)))
    assert problems == []
    assert parsed[key] == CHANGED[key] and type(parsed[key]) is type(CHANGED[key])
    assert parsed == values
    assert ViewState.from_mapping(parsed).values() == values


def test_all_parameters_together_round_trip() -> None:
    values = {**defaults(MODEL), **CHANGED}
    parsed, problems = parse_params(_from_url(_url(to_params(values))))
    assert problems == [] and parsed == values


@pytest.mark.parametrize("key", sorted(CHANGED))
def test_a_hand_written_parameter_is_read_not_ignored(key: str) -> None:
    """A link written by hand (string values, as a browser sends them) sets the value."""
    value = CHANGED[key]
    raw = ("1" if value else "0") if isinstance(value, bool) else str(value)
    parsed, problems = parse_params(_from_url(_url({"model": MODEL, key: raw})))
    assert problems == []
    assert parsed[key] == CHANGED[key] != defaults(MODEL)[key]


def test_model_parameter_changes_the_view() -> None:
    parsed, problems = parse_params(_from_url(_url({"model": "resnet18"})))
    assert problems == [] and parsed["model"] == "resnet18"
    assert parsed["layers"] == "2,2,2,2" and parsed["block"] == "basic"


@pytest.mark.parametrize("spelling", ["true", "false", "1", "0", "TRUE", "False"])
def test_preact_spellings_common_to_cli_and_url(spelling: str) -> None:
    cli = resolve_cli_spec("resnet18", sets=[f"preact={spelling}"]).preact
    parsed, problems = parse_params({"model": "resnet18", "preact": spelling})
    assert problems == [] and parsed["preact"] is cli


@pytest.mark.parametrize("spelling", ["yes", "no", "YES", "on", "off"])
def test_preact_url_accepts_every_spelling_the_cli_accepts(spelling: str) -> None:
    cli = resolve_cli_spec("resnet18", sets=[f"preact={spelling}"]).preact
    parsed, problems = parse_params({"model": "resnet18", "preact": spelling})
    assert problems == [] and parsed["preact"] is cli
