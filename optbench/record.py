"""The flat, JSON-ready record that one training run produces."""

from __future__ import annotations

import math
from typing import Literal, TypedDict

Status = Literal["converged", "not_converged", "diverged"]

SCHEMA_VERSION = 1
"""Version of the record's layout, saved as ``optbench_schema`` in every run and baseline file."""


class Record(TypedDict):
    """What the engine returns, what the benchmark stores in ``extra_info``.

    Floats that were not finite (a diverged run) are stored as ``None`` so the
    record stays valid JSON.
    """

    id: str
    optimizer: str
    batch_size: int
    device: str
    epochs: int
    seed: int
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


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or ``None`` when it is NaN or infinite."""
    value = float(value)
    return value if math.isfinite(value) else None
