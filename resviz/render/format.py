"""Every number a renderer prints as text, formatted in one place.

Text outputs (terminal tables, report tables, diagram labels) spell a value that was not measured
(``None``: no backward pass, a plain block's missing skip path, a run without training) as
:data:`MISSING`, and a measured value that is not finite as ``NaN``, ``inf`` or ``-inf``, so that
"not measured" and "measured, but it overflowed" never read alike. Flat files keep their own
conventions: an empty CSV cell (:func:`csv_value`) and the JSON codec's strings for non-finite floats.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

MISSING = "—"
"""The text of a value that was not measured: an em dash, which cannot be mistaken for a minus sign."""


def nonfinite(value: float) -> str | None:
    """``NaN``, ``inf`` or ``-inf`` for a non-finite float, None for a finite one."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return None


def human(n: float | None) -> str:
    """A count with an SI prefix and three significant digits: 1234567 -> ``1.23M``, 512 -> ``512``.

    For parameters, MACs and bytes, whose size matters more than their last digits. None prints
    :data:`MISSING`; a non-finite value prints as :func:`nonfinite` says.
    """
    if n is None:
        return MISSING
    bad = nonfinite(float(n))
    if bad is not None:
        return bad
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(int(n)) if float(n).is_integer() else f"{n:.3g}"


def num(value: object) -> str:
    """One report cell: integers exact with thousands separators, floats to four significant digits.

    Booleans print ``yes`` / ``no``, None :data:`MISSING`, non-finite floats as :func:`nonfinite`
    says, and anything else (a name, a status) as ``str``; NumPy scalars count as numbers. Four
    digits let a reader match a cell with the JSON value.
    """
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return f"{int(value):,}"
    if isinstance(value, Real):
        return nonfinite(float(value)) or f"{float(value):.4g}"
    return str(value)


def sig(value: float | None, digits: int = 3, small: float = 1e-3, large: float = 1e4) -> str:
    """A statistic in a terminal table: ``digits`` significant digits, scientific below ``small`` or
    from ``large``.

    Activation statistics and gradient norms span many orders of magnitude; the switch keeps
    columns narrow without printing tiny values as ``0``. Zero prints ``0``, None
    :data:`MISSING`, non-finite values as :func:`nonfinite` says.
    """
    if value is None:
        return MISSING
    bad = nonfinite(value)
    if bad is not None:
        return bad
    if value == 0:
        return "0"
    if abs(value) >= large or abs(value) < small:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def sci(x: float | None) -> str:
    """A gradient norm or ratio in a diagram label: ``3.20e-03`` below 1e-2 or from 1e3, else ``0.25``.

    Diagram labels are narrow, so scientific notation starts earlier than in a table's :func:`sig`.
    """
    return sig(x, 3, small=1e-2, large=1e3)


def percent(fraction: float | None) -> str:
    """A share as a whole percentage, 0.256 -> ``26%``; None prints :data:`MISSING`."""
    if fraction is None:
        return MISSING
    return nonfinite(fraction) or f"{fraction:.0%}"


def csv_value(value: float | None) -> str | float:
    """A CSV cell: the value itself, or an empty cell for a value that was not measured."""
    return "" if value is None else value


__all__ = ["MISSING", "csv_value", "human", "nonfinite", "num", "percent", "sci", "sig"]
