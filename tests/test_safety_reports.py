"""Comparison numbers against the Trace's block records, computed in the test.

Documented definitions (resviz/studies/flow.py): the headline is the gradient norm at the
first block's input divided by that at the last block's input (He et al. 2016, Eqs. 4-5: with
identity shortcuts the shallow gradient keeps a direct copy of the deep one); per stage, the same
first / last ratio inside the stage ("attenuation") and the mean of the blocks' grad_main /
grad_skip; per block, ratio = grad_main / grad_skip (None for a plain block).
"""

from __future__ import annotations

import math
import statistics

import pytest

import resviz
from resviz.render.report.tables import headline_table, stage_table

MODELS = ("resnet20", "plain20")


@pytest.fixture(scope="module")
def comparison() -> object:
    return resviz.compare(list(MODELS), steps=0, batch=4, input_size="3x16x16", device="cpu", seed=0)


def _fmt(v: float | None) -> str:
    """Four significant digits, as the report documents its cells."""
    return "–" if v is None else f"{v:.4g}"


@pytest.mark.parametrize("name", MODELS)
def test_headline_is_first_over_last_block_gradient(comparison: object, name: str) -> None:
    m = comparison.model(name)  # type: ignore[attr-defined]
    blocks = m.trace.blocks
    first, last = blocks[0].grad_total, blocks[-1].grad_total
    assert first is not None and last is not None and first != pytest.approx(last, rel=1e-2)
    assert m.grad_first == first and m.grad_last == last
    assert m.headline == pytest.approx(first / last, rel=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_stage_first_last_ratio_and_mean_branch_ratio(comparison: object, name: str) -> None:
    """Per stage, from the trace's block records grouped by their stage here."""
    m = comparison.model(name)  # type: ignore[attr-defined]
    by_stage: dict[str, list[object]] = {}
    for b in m.trace.blocks:
        by_stage.setdefault(b.stage, []).append(b)
    assert [s.name for s in m.stages] == list(by_stage) and len(by_stage) == 3
    for s in m.stages:
        bs = by_stage[s.name]
        first, last = bs[0].grad_total, bs[-1].grad_total  # type: ignore[attr-defined]
        assert s.blocks == len(bs)
        assert (s.grad_first, s.grad_last) == (first, last)
        assert s.attenuation == pytest.approx(first / last, rel=1e-12)
        assert not math.isclose(first, last, rel_tol=1e-2)  # so an inverted ratio differs
        with_skip = [b for b in bs if b.grad_skip]  # type: ignore[attr-defined]
        if with_skip:
            want = statistics.fmean(b.grad_main / b.grad_skip for b in with_skip)  # type: ignore[attr-defined]
            assert s.mean_ratio == pytest.approx(want, rel=1e-12)
        else:
            assert s.mean_ratio is None


@pytest.mark.parametrize("name", MODELS)
def test_block_ratio_is_main_over_skip(comparison: object, name: str) -> None:
    m = comparison.model(name)  # type: ignore[attr-defined]
    assert len(m.blocks) == len(m.trace.blocks) == 9
    for flow, rec in zip(m.blocks, m.trace.blocks, strict=True):
        assert (flow.grad_main, flow.grad_skip, flow.grad_total) == (rec.grad_main, rec.grad_skip, rec.grad_total)
        if rec.grad_skip:
            assert flow.ratio == pytest.approx(rec.grad_main / rec.grad_skip, rel=1e-12)
            assert rec.grad_ratio == pytest.approx(rec.grad_main / rec.grad_skip, rel=1e-12)
            assert rec.skip_share == pytest.approx(rec.grad_skip / (rec.grad_main + rec.grad_skip), rel=1e-12)
        else:
            assert flow.ratio is None and rec.grad_ratio is None
        if rec.skip_rms:
            assert rec.rms_ratio == pytest.approx(rec.main_rms / rec.skip_rms, rel=1e-12)


def test_report_tables_print_the_test_computed_ratios(comparison: object) -> None:
    """The HTML/Markdown tables' cells carry the same first/last ratios (4 significant digits)."""
    header, rows = headline_table(comparison)  # type: ignore[arg-type]
    col = {h: i for i, h in enumerate(header)}
    for row in rows:
        blocks = comparison.model(row[0]).trace.blocks  # type: ignore[attr-defined]
        first, last = blocks[0].grad_total, blocks[-1].grad_total
        assert row[col["grad first block"]] == _fmt(first)
        assert row[col["grad last block"]] == _fmt(last)
        assert row[col["first / last"]] == _fmt(first / last)
    m = comparison.model("resnet20")  # type: ignore[attr-defined]
    header, rows = stage_table(m)
    col = {h: i for i, h in enumerate(header)}
    for row in rows:
        bs = [b for b in m.trace.blocks if b.stage == row[0]]
        assert row[col["first / last"]] == _fmt(bs[0].grad_total / bs[-1].grad_total)
