"""The dashboard reads typed records, so every column it shows has a field behind it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from resviz.dashboard.pages_compare import result_frame
from resviz.records import Comparison

V0 = Path(__file__).parent / "data" / "v0"


def test_the_compare_table_shows_each_model_s_final_loss() -> None:
    """The column used to read a key no record wrote, so it was always empty."""
    c = Comparison.from_dict(json.loads((V0 / "comparison-resnet20-plain20.json").read_text()))
    frame = result_frame(c)
    assert list(frame["model"]) == ["resnet20", "plain20"]
    for m, shown in zip(c.models, frame["final loss"], strict=True):
        assert m.training is not None and len(m.training.losses) == 2
        assert shown == m.training.losses[-1] and math.isfinite(shown)
    assert list(frame["status"]) == ["ok", "ok"]
    assert list(frame["grad first / last block"]) == [m.headline for m in c.models]
