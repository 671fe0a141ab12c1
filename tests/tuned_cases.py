"""Tuned-settings cases for tests: as ``python -m optbench.tune`` writes them, from made-up sweeps."""

import math
from pathlib import Path

from optbench.tune import settings
from optbench.tune.choose import Point, choose
from optbench.tune.settings import CaseRow, TunedFile, point_row

GRID = [0.001, 0.01, 0.1, 1.0]
PASSES = (0.0, 1.0, 1.0, 0.5)
Q95 = (2.0, 1e-3, 1e-2, None)
"""A sweep whose window is 0.01-0.1, whose chosen lr is 0.01 (the lower excess loss of the two
middle points), and whose 0.95-quantile excess loss at lr 1 is infinite (a quarter of the seeds diverged)."""


def case(
    optimizer: str,
    problem: str = "line",
    batch_size: int = 10,
    dtype: str = "float32",
    passes=PASSES,
    q95=Q95,
) -> CaseRow:
    """A case with the rule's own choice from these points, as ``python -m optbench.tune`` writes one."""
    points = [
        Point(
            lr, rate, math.inf if q is None else q / 2, math.inf if q is None else q, 0.25 * (q is None), 0.1
        )
        for lr, rate, q in zip(GRID, passes, q95, strict=True)
    ]
    choice = choose(points)
    return CaseRow(
        optimizer=optimizer, problem=problem, batch_size=batch_size, dtype=dtype, device="cpu",
        hyperparams="{}", lr=choice.lr, window=choice.window, tunability=choice.tunability,
        pass_rate=next(p.pass_rate for p in points if p.lr == choice.lr), grid=GRID, seeds=32, epochs=20,
        how="vectorised", torch="2.13.0+cpu", date="2026-12-02", seconds=0.4,
        points=[point_row(point) for point in points],
    )  # fmt: skip


def tuned(*cases: CaseRow) -> TunedFile:
    """The file these cases make, as ``settings.read`` gives it back."""
    return settings.parse(settings.dumps(cases, "test"), Path("tuned.json"))
