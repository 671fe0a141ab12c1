"""The flat, JSON-ready record that one training run produces."""

from __future__ import annotations

import math
from typing import Literal, TypedDict

Status = Literal["converged", "not_converged", "diverged"]

SCHEMA_VERSION = 2
"""Version of the record's layout, saved as ``optbench_schema`` in every run and baseline file.

Version 2 added the multi-seed fields (``seeds`` to ``epoch_mse_q90``) and ``dtype``;
a version 1 record reads as one float32 seed."""

SeedRuns = Literal["one", "vectorised", "sequential"]


class Record(TypedDict):
    """What the engine returns, what the benchmark stores in ``extra_info``.

    The fields up to ``step_loss_stride`` describe the run of ``seed`` alone,
    exactly as a one-seed scenario would give them. A scenario with several seeds
    trains seeds ``seed`` to ``seed + seeds - 1``; the ``seed_*`` lists hold each
    seed's finals in that order, ``pass_rate`` the share that converged, the
    ``*_qNN`` fields nearest-rank quantiles over seeds (see ``optbench.spread``),
    and ``status`` judges all seeds at once (``optbench.checks``).

    Floats that were not finite (a diverged run) are stored as ``None`` so the
    record stays valid JSON.
    """

    id: str
    optimizer: str
    batch_size: int
    device: str
    epochs: int
    seed: int
    dtype: str
    shuffle: bool
    hyperparams: str
    steps: int
    status: Status
    seconds: float
    final_mse: float | None
    slope: float | None
    intercept: float | None
    optimum_mse: float
    optimum_slope: float
    optimum_intercept: float
    target_slope: float
    target_intercept: float
    epoch_mse: list[float | None]
    step_loss: list[float | None]
    step_loss_stride: int
    seeds: int
    seed_runs: SeedRuns
    seed_final_mse: list[float | None]
    seed_optimum_mse: list[float | None]
    seed_slope: list[float | None]
    seed_intercept: list[float | None]
    seed_status: list[Status]
    pass_rate: float
    excess_mse_q10: float | None
    excess_mse_q50: float | None
    excess_mse_q90: float | None
    excess_mse_q95: float | None
    slope_error_q10: float | None
    slope_error_q50: float | None
    slope_error_q90: float | None
    slope_error_q95: float | None
    intercept_error_q10: float | None
    intercept_error_q50: float | None
    intercept_error_q90: float | None
    intercept_error_q95: float | None
    epoch_mse_q10: list[float | None]
    epoch_mse_q50: list[float | None]
    epoch_mse_q90: list[float | None]


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or ``None`` when it is NaN or infinite."""
    value = float(value)
    return value if math.isfinite(value) else None
