"""Compare counts with torchvision's metadata and the papers, and explain every difference."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from resviz.records import Summary
from resviz.reference import PAPER, TORCHVISION
from resviz.spec import ResNetSpec, StrideAt

_UNITS = {"K": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9}


def matches_printed(value: int, printed: str) -> bool:
    """Whether ``value`` rounds or truncates to a figure printed as e.g. ``"0.27M"``.

    The papers round some figures and truncate others (He et al. 2015 Table 1 prints ResNet-34's
    3.66e9 multiply-adds as 3.6 but ResNet-101's 7.57e9 as 7.6), so both readings are accepted:
    ``printed - half a last digit <= value < printed + one last digit``.
    """
    number, unit = Decimal(printed[:-1]), _UNITS[printed[-1]]
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    digit = Decimal(10) ** exponent * unit
    low = number * unit - digit / 2
    return low <= Decimal(value) < number * unit + digit


def _paper_resolution(spec: ResNetSpec, summary: Summary) -> bool:
    return summary.input_shape == spec.default_input_size


def reference_notes(spec: ResNetSpec, summary: Summary, macs_stride_1x1: int | None = None) -> list[str]:
    """One sentence per published figure: that it matches, or why it differs."""
    notes: list[str] = []
    at_ref = _paper_resolution(spec, summary)
    tv = TORCHVISION.get(spec.name)
    if tv is not None:
        params, gmacs = tv
        ok = summary.total_params == params
        notes.append(
            f"parameters {summary.total_params:,} {'equal' if ok else 'DIFFER from'} torchvision's "
            f"{params:,}"
        )
        if at_ref:
            ours = round(summary.total_macs / 1e9, 3)
            verdict = "equal" if ours == gmacs else "DIFFER from"
            notes.append(f"MACs {ours:.3f}G {verdict} torchvision's _ops {gmacs:.3f}G (1x3x224x224)")
    fig = PAPER.get(spec.name)
    if fig is None:
        return notes
    if fig.params is not None:
        if matches_printed(summary.total_params, fig.params):
            notes.append(f"parameters match {fig.source} ({fig.params})")
        else:
            bn = sum(lr.params for lr in summary.layers if lr.type.startswith("BatchNorm"))
            rest = summary.total_params - bn
            why = (
                f"; without BatchNorm's {bn:,} affine parameters the count is {rest / 1e6:.2f}M, "
                "which is the paper's figure"
                if matches_printed(rest, fig.params)
                else ""
            )
            notes.append(
                f"{fig.source} prints {fig.params} parameters; resviz counts "
                f"{summary.total_params / 1e6:.2f}M{why}"
            )
    if fig.macs is not None and at_ref:
        if matches_printed(summary.total_macs, fig.macs):
            notes.append(f"multiply-adds match {fig.source} ({fig.macs})")
        elif macs_stride_1x1 is not None and matches_printed(macs_stride_1x1, fig.macs):
            notes.append(
                f"{fig.source} prints {fig.macs} multiply-adds for the paper's bottleneck, which "
                f"strides its first 1x1 conv ({macs_stride_1x1 / 1e9:.2f}G with --set stride_at=1x1); "
                f"torchvision strides the 3x3 conv (ResNet v1.5), which costs "
                f"{summary.total_macs / 1e9:.2f}G"
            )
        else:
            notes.append(
                f"{fig.source} prints {fig.macs} multiply-adds; resviz counts "
                f"{summary.total_macs / 1e9:.2f}G"
            )
    return notes


def needs_stride_variant(spec: ResNetSpec) -> ResNetSpec | None:
    """The 2015-paper variant of a torchvision bottleneck preset, to explain its MAC figure."""
    fig = PAPER.get(spec.name)
    if fig is None or fig.macs is None or spec.stride_at is StrideAt.CONV1X1:
        return None
    if spec.block.value != "bottleneck":
        return None
    return dataclasses.replace(spec, stride_at=StrideAt.CONV1X1)
