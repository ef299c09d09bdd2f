"""Published figures resviz compares its own counts against, with their sources.

* ``TORCHVISION``: torchvision 0.29.1 weights metadata, ``num_params`` and ``_ops`` (GMACs of conv
  and linear layers at 1x3x224x224; torchvision labels them GFLOPS).
* ``PAPER``: parameter counts and multiply-adds printed in the papers. He et al. 2015 Table 1
  ("FLOPs", which are multiply-adds) and Table 6 (CIFAR-10 parameters); He et al. 2016
  ("Identity Mappings") Table 2 (CIFAR pre-activation parameters).
"""

from __future__ import annotations

from typing import NamedTuple


class Figure(NamedTuple):
    params: str | None  # parameters as printed, e.g. "0.27M"
    macs: str | None  # multiply-adds as printed at the paper's resolution, e.g. "3.8G"
    source: str


TORCHVISION: dict[str, tuple[int, float]] = {
    "resnet18": (11689512, 1.814),
    "resnet34": (21797672, 3.664),
    "resnet50": (25557032, 4.089),
    "resnet101": (44549160, 7.801),
    "resnet152": (60192808, 11.514),
    "wide_resnet50_2": (68883240, 11.398),
    "wide_resnet101_2": (126886696, 22.753),
    "resnext50_32x4d": (25028904, 4.23),
    "resnext101_32x8d": (88791336, 16.414),
    "resnext101_64x4d": (83455272, 15.46),
}

_T1 = "He et al. 2015, Table 1"
_T6 = "He et al. 2015, Table 6"
_PA = "He et al. 2016, Table 2"

PAPER: dict[str, Figure] = {
    "resnet18": Figure(None, "1.8G", _T1),
    "resnet34": Figure(None, "3.6G", _T1),
    "resnet50": Figure(None, "3.8G", _T1),
    "resnet101": Figure(None, "7.6G", _T1),
    "resnet152": Figure(None, "11.3G", _T1),
    "resnet20": Figure("0.27M", None, _T6),
    "resnet32": Figure("0.46M", None, _T6),
    "resnet44": Figure("0.66M", None, _T6),
    "resnet56": Figure("0.85M", None, _T6),
    "resnet110": Figure("1.7M", None, _T6),
    "resnet1202": Figure("19.4M", None, _T6),
    "preact_resnet164": Figure("1.7M", None, _PA),
    "preact_resnet1001": Figure("10.2M", None, _PA),
}
