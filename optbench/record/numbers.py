"""The one place where saved numbers and floats meet: JSON has no NaN, so a record saves ``None``.

Imported by the problems too (the line reads its old records with them), so it imports nothing of
optbench's.
"""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or ``None`` when it is NaN or infinite: how a record saves a number."""
    value = float(value)
    return value if math.isfinite(value) else None


def as_float(value: Any) -> float:
    """A saved number as a float; NaN for ``None`` (a non-finite number) or anything not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def or_inf(value: Any) -> float:
    """A saved number as a distance still to go: ``inf`` where it is missing or NaN (a diverged run)."""
    number = as_float(value)
    return math.inf if number != number else number
