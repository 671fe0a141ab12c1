"""The learning rates a sweep tries: a log grid, checked, and its option's parser."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from optbench.messages import one_line

DEFAULT_GRID: tuple[float, ...] = tuple(float(f"{10 ** (step / 2):.4g}") for step in range(-8, 5))
"""1e-4 to 1e2 in half-decade steps: 13 points (``3.162e-4`` stands for ``10 ** -3.5``)."""

MAX_POINTS = 100
"""The most learning rates one sweep tries: eight points a decade over twelve decades, and some."""


def check_grid(grid: Sequence[float]) -> tuple[float, ...]:
    """``grid`` as an ascending tuple of floats, each positive and finite, none twice.

    Raises:
        ValueError: with one line naming the bad value.
    """
    if not grid:
        raise ValueError("the learning-rate grid is empty; give at least one learning rate")
    if len(grid) > MAX_POINTS:
        raise ValueError(f"the learning-rate grid has {len(grid)} points, more than {MAX_POINTS}; give fewer")
    checked = []
    for value in grid:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"learning rate {one_line(repr(value), 60)} is not a number")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"learning rate {value!r} is not a positive finite number")
        checked.append(float(value))
    if len(set(checked)) != len(checked):
        raise ValueError("the learning-rate grid names a learning rate twice; give each once")
    return tuple(sorted(checked))


def log_grid(low: float, high: float, per_decade: int) -> tuple[float, ...]:
    """``per_decade`` points a decade from ``low`` up to ``high``, rounded to four digits.

    ``high`` is kept where it lies on the steps (``1e-4:1e2:2``); otherwise the grid stops at the
    last step below it.
    """
    if not (0 < low <= high and math.isfinite(high)) or per_decade < 1:
        raise ValueError(
            "a log grid needs 0 < low <= high and at least one point a decade, "
            f"got {low!r}:{high!r}:{per_decade!r}"
        )
    steps = math.floor((math.log10(high) - math.log10(low)) * per_decade + 1e-9)
    if steps + 1 > MAX_POINTS:
        raise ValueError(
            f"the learning-rate grid would have {steps + 1} points, more than {MAX_POINTS}; give fewer"
        )
    return check_grid(sorted({float(f"{low * 10 ** (k / per_decade):.4g}") for k in range(steps + 1)}))


def parse_lr_grid(value: str) -> tuple[float, ...]:
    """``--lr-grid``: comma-separated learning rates (``0.001,0.01,0.1``) or ``LOW:HIGH:PER_DECADE``.

    ``1e-4:1e2:2`` is the default grid.
    """
    text = value.strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError(f"{one_line(repr(value), 60)} is not LOW:HIGH:PER_DECADE")
            try:
                low, high, per_decade = float(parts[0]), float(parts[1]), int(parts[2])
            except ValueError:
                raise ValueError(
                    f"{one_line(repr(value), 60)} is not LOW:HIGH:PER_DECADE (such as 1e-4:1e2:2)"
                ) from None
            return log_grid(low, high, per_decade)
        items = [item.strip() for item in text.split(",") if item.strip()]
        numbers = []
        for item in items:
            try:
                numbers.append(float(item))
            except ValueError:
                raise ValueError(f"learning rate {one_line(repr(item), 60)} is not a number") from None
        return check_grid(numbers)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def decades(low: float, high: float) -> float:
    """The width of ``[low, high]`` in decades, ``log10(high / low)``."""
    return math.log10(high / low)
