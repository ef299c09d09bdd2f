"""Optional extras: the packages only some features need, and the one-line error when one is missing.

``pip install resviz`` installs what the summary, the tracer, the monitor, the diagrams and the
command line need. The rest comes with an extra (``pip install 'resviz[dashboard]'``); the names
and their packages are in ``pyproject.toml`` (``[project.optional-dependencies]``). A feature
whose package is missing raises :class:`~resviz.errors.ResvizError` naming the extra to install,
which the surfaces print in one line (exit code 2 in the CLI).

Two ways to import an optional package:

* inside the function that needs it: ``Image = require("PIL.Image", "data", "an image folder")``;
* at the top of a module that cannot work without it::

      try:
          import plotly.graph_objects as go
      except ImportError as exc:
          raise missing(exc, "reports", "Plotly figures") from None
"""

from __future__ import annotations

import importlib
from types import ModuleType

from resviz.errors import ResvizError

#: Import name -> the name pip installs it by, where the two differ.
DISTRIBUTIONS = {"PIL": "pillow", "sklearn": "scikit-learn", "yaml": "pyyaml"}

#: The top-level packages each extra installs (pyproject.toml's lists, by import name): a missing
#: module outside its extra's packages is a broken installation, not a missing extra.
EXTRA_PACKAGES: dict[str, frozenset[str]] = {
    "dashboard": frozenset({"streamlit", "plotly", "pandas"}),
    "reports": frozenset({"plotly"}),
    "reconcile": frozenset({"fvcore", "torchinfo"}),
    "data": frozenset({"sklearn", "PIL"}),
    "tensorboard": frozenset({"tensorboard"}),
    "lightning": frozenset({"lightning"}),
}


def _top(name: str) -> str:
    return name.split(".")[0]


def message(package: str, extra: str, feature: str) -> str:
    """``"<feature> needs <package>: pip install 'resviz[<extra>]'"``, one line."""
    top = _top(package)
    return f"{feature} needs {DISTRIBUTIONS.get(top, top)}: pip install 'resviz[{extra}]'"


def missing(exc: ImportError, extra: str, feature: str) -> Exception:
    """The error to raise for a failed import: a :class:`ResvizError` naming ``extra`` when a
    package is not installed, or ``exc`` itself when the import failed for another reason (a
    broken installation is not the user's mistake, and keeps its traceback)."""
    if isinstance(exc, ModuleNotFoundError) and exc.name and _top(exc.name) in EXTRA_PACKAGES.get(extra, ()):
        return ResvizError(message(exc.name, extra, feature))
    return exc


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` (an optional package, or a module of one) for ``feature``.

    When its package is not installed, raises :class:`ResvizError` in one line, e.g.
    "the counter reconciliation needs fvcore: pip install 'resviz[reconcile]'". A package that is
    installed but fails to import for another reason (one of its own dependencies missing) raises
    the original error.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or _top(exc.name) != _top(module):
            raise
        raise ResvizError(message(module, extra, feature)) from None


__all__ = ["DISTRIBUTIONS", "EXTRA_PACKAGES", "message", "missing", "require"]
