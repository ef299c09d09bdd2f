"""Which versions produced a result: printed with reports so that they can be reproduced."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import torch


def package_version(package: str, missing: str = "unknown") -> str:
    """The installed version of ``package``, or ``missing``."""
    try:
        return version(package)
    except PackageNotFoundError:
        return missing


def versions() -> dict[str, str]:
    """resviz, torch, plotly, Python and the platform: the settings section of a report."""
    return {
        "resviz": package_version("resviz"), "torch": torch.__version__, "plotly": package_version("plotly"),
        "python": sys.version.split()[0], "platform": platform.platform(terse=True),
    }
