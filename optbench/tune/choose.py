"""How a sweep's learning rate is chosen, and how tunable an optimizer is: one documented rule.

A point *passes* when its pass rate over seeds is at least ``PASSING`` (0.95: 31 of
32 seeds converge, the same share the matrix's 0.95 quantile demands). A *window* is
a run of neighbouring grid points that all pass; its width in decades is
``log10(highest / lowest)`` (0 for a window of one point).

The rule (``choose``):

1. Where some point passes, take the widest window (by its width to 0.01 decades; between
   equally wide ones, the one with the lower median of its points' 0.95-quantile excess
   loss, then the lower learning rates). The chosen learning rate is the window's middle
   point (by position on the grid, the log-middle on an evenly spaced one);
   of two middle points, the one with the higher pass rate, then the lower 0.95-quantile
   excess loss, then the lower learning rate. A learning rate in the middle of what
   passes keeps its distance from both edges, where a small change of torch or of the
   problem would tip it over.
2. Where no point passes, the point with the highest pass rate, then the lowest
   0.95-quantile excess loss, then the lowest median excess loss, then the lower
   learning rate; its case has no window and a tunability of 0.

*Tunability* is the widest window's width in decades (0 where none passes): a wide
window means the optimizer hardly needs tuning there.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from optbench.tune.grid import decades

PASSING = 0.95
"""The pass rate over seeds at which a point passes."""

RULE = (
    "passing: pass rate >= 0.95; window: neighbouring passing grid points; tunability: the widest "
    "window's log10(high / low), 0 where none passes; the widest window (ties: lower median of its "
    "0.95-quantile excess losses, then lower lrs); lr: its middle grid point (ties: pass rate, then "
    "0.95-quantile excess loss, then the lower lr), or with no window the highest pass rate, then the "
    "lowest 0.95-quantile excess loss, then the lowest median excess loss, then the lower lr"
)
"""The rule in one line, as the tuned-settings file states it."""


@dataclass(frozen=True)
class Point:
    """One learning rate's outcome over the seeds of a sweep.

    Attributes:
        lr: the learning rate.
        pass_rate: the share of seeds that converged.
        excess_median: the median over seeds of the excess loss (``inf`` where diverged seeds reach it).
        excess_q95: the nearest-rank 0.95 quantile over seeds of the excess loss.
        diverged: the share of seeds whose status is ``diverged``: the loss became NaN or infinite,
            or ended ``DIVERGENCE_FACTOR`` times as far from the reference as it started
            (``optbench.record.checks``); a seed that stalled or ended short of its bounds counts
            in neither this share nor the pass rate.
        seconds: this point's share of the training time.
    """

    lr: float
    pass_rate: float
    excess_median: float
    excess_q95: float
    diverged: float
    seconds: float

    @property
    def passes(self) -> bool:
        """Whether at least ``PASSING`` of the seeds converged."""
        return self.pass_rate >= PASSING


@dataclass(frozen=True)
class Choice:
    """What the rule chose from a sweep's points."""

    lr: float
    window: tuple[float, float] | None
    """The widest passing window's lowest and highest learning rate, or ``None``."""
    tunability: float
    """The window's width in decades; 0 where no point passes."""


def windows(points: Sequence[Point]) -> list[list[Point]]:
    """The runs of neighbouring passing points, in grid order."""
    runs: list[list[Point]] = []
    current: list[Point] = []
    for point in sorted(points, key=lambda p: p.lr):
        if point.passes:
            current.append(point)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _nan_last(value: float) -> float:
    return math.inf if math.isnan(value) else value


def choose(points: Sequence[Point]) -> Choice:
    """The rule of this module applied to one sweep's points.

    Raises:
        ValueError: no points.
    """
    if not points:
        raise ValueError("no points to choose a learning rate from")
    runs = windows(points)
    if not runs:
        best = min(
            points,
            key=lambda p: (-p.pass_rate, _nan_last(p.excess_q95), _nan_last(p.excess_median), p.lr),
        )
        return Choice(best.lr, None, 0.0)

    def width(run: list[Point]) -> float:
        return decades(run[0].lr, run[-1].lr)

    widest = min(
        runs,
        key=lambda run: (
            -round(width(run), 2),  # the grid's rounded points make equal widths differ by 1e-4
            statistics.median(_nan_last(p.excess_q95) for p in run),
            run[0].lr,
        ),
    )
    middle = len(widest) // 2
    middles = widest[middle - 1 : middle + 1] if len(widest) % 2 == 0 else [widest[middle]]
    chosen = min(middles, key=lambda p: (-p.pass_rate, _nan_last(p.excess_q95), p.lr))
    return Choice(chosen.lr, (widest[0].lr, widest[-1].lr), width(widest))
