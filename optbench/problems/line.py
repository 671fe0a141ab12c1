"""The tutorial's problem: ``nn.Linear(1, 1)`` fitting the noisy line ``y = -5x + 1``, under MSE.

Everything that speaks of the line lives here: its data, its least-squares solution, its model, its
metrics (slope and intercept, and their distance from the true line), and how records saved before
schema 3, which were all of the line, read in today's fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from optbench.problems.base import Data, Metric, Problem, Reference
from optbench.record.numbers import as_float, finite_or_none

TUTORIAL_SIZE = 100
"""Points in the tutorial's data set, so batch size 100 is full batch."""

TUTORIAL_SLOPE, TUTORIAL_INTERCEPT = -5.0, 1.0
"""The tutorial's true line, ``y = -5x + 1``."""


class LineDataset(Dataset):
    """Points on ``y = slope * x + intercept`` with Gaussian noise.

    The defaults are the tutorial's data: ``x = arange(-5, 5, 0.1)`` as a column
    (100 points) and ``y = -5x + 1 + 0.4 * N(0, 1)``. The noise comes from a
    private generator seeded with ``seed``, so building a dataset never touches
    torch's global random state.

    Args:
        seed: seed of the noise.
        slope: slope of the true line.
        intercept: intercept of the true line.
        noise: standard deviation of the noise added to ``y``.
        size: number of points; ``x`` steps by ``step`` from ``start``.
        start: first ``x``.
        step: distance between consecutive ``x``.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        slope: float = TUTORIAL_SLOPE,
        intercept: float = TUTORIAL_INTERCEPT,
        noise: float = 0.4,
        size: int = TUTORIAL_SIZE,
        start: float = -5.0,
        step: float = 0.1,
    ) -> None:
        if size < 1:
            raise ValueError(f"LineDataset: size must be at least 1, got {size}")
        if noise < 0:
            raise ValueError(f"LineDataset: noise must be non-negative, got {noise}")
        self.seed = seed
        self.slope = slope
        self.intercept = intercept
        self.noise = noise
        # Ending half a step past the last point gives exactly `size` points for
        # any step (a float end can round to one point more), and the same values
        # as the tutorial's arange(-5, 5, 0.1).
        self.x = torch.arange(start, start + (size - 0.5) * step, step).view(-1, 1)
        generator = torch.Generator().manual_seed(seed)
        self.func = slope * self.x + intercept
        self.truth = (slope, intercept)
        """The parameters the points were drawn around, as a problem's ``truth``."""
        self.y = self.func + noise * torch.randn(self.x.shape, generator=generator)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass(frozen=True)
class LeastSquares:
    """The closed-form best line through a set of points, and its MSE."""

    slope: float
    intercept: float
    mse: float


def least_squares(x: torch.Tensor, y: torch.Tensor) -> LeastSquares:
    """Fits ``y ~ slope * x + intercept`` exactly, in float64.

    Args:
        x: inputs, shape ``(n, 1)`` or ``(n,)``.
        y: targets, same number of points.

    Returns:
        The optimum that no optimizer can beat on this data.
    """
    xs = x.detach().reshape(-1).to("cpu", torch.float64)
    ys = y.detach().reshape(-1).to("cpu", torch.float64)
    # The centred normal equations: exact for one input, and deterministic to the
    # last bit (LAPACK's lstsq was not, from one call to the next).
    dx, dy = xs - xs.mean(), ys - ys.mean()
    spread = dx.square().sum()
    slope = (dx * dy).sum() / spread if spread > 0 else torch.zeros((), dtype=torch.float64)
    intercept = ys.mean() - slope * xs.mean()
    return LeastSquares(
        slope=float(slope),
        intercept=float(intercept),
        mse=float((slope * xs + intercept - ys).square().mean()),
    )


def linear(seed: int, *, weight: float | None = None, bias: float | None = None) -> nn.Linear:
    """The tutorial's model, ``nn.Linear(1, 1)``, with a reproducible start.

    Args:
        seed: seeds PyTorch's default initialisation (``U(-1, 1)`` for one input)
            without touching the caller's global random state.
        weight: a fixed initial weight instead (the tutorial shows -10).
        bias: a fixed initial bias instead (the tutorial shows -20).

    Returns:
        A new module on the CPU; the engine moves it to the scenario's device.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Linear(1, 1)
    with torch.no_grad():
        if weight is not None:
            model.weight.fill_(weight)
        if bias is not None:
            model.bias.fill_(bias)
    return model


def line_data(seed: int) -> Data:
    """The tutorial's 100 points, with the noise drawn from ``seed``."""
    dataset = LineDataset(seed)
    return dataset.x, dataset.y


def line_reference(x: torch.Tensor, y: torch.Tensor) -> Reference:
    """The least-squares line through the points: exact, in float64; parameters (slope, intercept)."""
    fit = least_squares(x, y)
    return Reference(loss=fit.mse, params=(fit.slope, fit.intercept))


def line_measure(model: nn.Module, target: tuple[float, ...]) -> dict[str, float]:
    """The line a one-in, one-out model draws (its values at x = 0 and 1), and its errors from ``target``."""
    parameter = next(model.parameters())
    probe = torch.tensor([[0.0], [1.0]], device=parameter.device, dtype=parameter.dtype)
    with torch.no_grad():
        at0, at1 = model(probe).reshape(-1).tolist()
    slope, intercept = at1 - at0, at0
    return {
        "slope": slope,
        "intercept": intercept,
        "slope_error": abs(slope - target[0]),
        "intercept_error": abs(intercept - target[1]),
    }


LINE = Problem(
    name="line",
    data=line_data,
    model=linear,
    loss=F.mse_loss,
    reference=line_reference,
    # Bounds calibrated over 200 seeds of every default case (docs/calibration.md, `python -m
    # optbench.calibrate`); tolerances over what rounding alone moves (the same runs in float64).
    metrics=(
        Metric("excess_loss", "excess MSE", bound=0.3, tolerance=0.05),
        Metric("slope"),
        Metric("intercept"),
        Metric("slope_error", "slope error", bound=0.2, tolerance=0.15),
        Metric("intercept_error", "intercept error", bound=0.3, tolerance=0.25),
    ),
    measure=line_measure,
    batch_sizes=(1, 10, 50, TUTORIAL_SIZE),
    truth=(TUTORIAL_SLOPE, TUTORIAL_INTERCEPT),
    # Large batches take few steps per epoch, so they get more epochs.
    epochs={1: 20, 10: 20, 50: 100, TUTORIAL_SIZE: 100},
    default_epochs=20,
)


def _number(value: Any) -> float | None:
    return finite_or_none(as_float(value))


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _off(value: float | None, target: float | None) -> float | None:
    return None if value is None or target is None else abs(value - target)


SCHEMA2_NEEDED = (
    "id", "optimizer", "batch_size", "device", "status", "final_mse", "optimum_mse", "epoch_mse",
)  # fmt: skip
"""What every record of schema 1 or 2 has: how a reader tells one."""


def from_schema2(info: dict[str, Any]) -> dict[str, Any]:
    """A record saved before schema 3 (schemas 1 and 2, all of the line) in today's fields.

    Renamed: ``final_mse`` to ``final_loss``, ``optimum_mse`` to ``reference_loss``, ``epoch_mse``
    (and its bands) to ``epoch_loss``, ``seed_final_mse`` and ``seed_optimum_mse`` likewise, the
    ``excess_mse_q..`` quantiles to ``excess_loss_q..``. Derived as the line derives them today:
    ``excess_loss``, ``slope_error`` and ``intercept_error`` (against the saved target), and
    ``distance`` from the first seed's reference. Fields that are not numbers stay as saved, for the
    reader to judge.
    """
    renamed = {
        "final_mse": "final_loss",
        "optimum_mse": "reference_loss",
        "epoch_mse": "epoch_loss",
        "seed_final_mse": "seed_final_loss",
        "seed_optimum_mse": "seed_reference_loss",
    }
    record = {renamed.get(key, key): value for key, value in info.items()}
    for key, value in info.items():
        for old, new in (("excess_mse_q", "excess_loss_q"), ("epoch_mse_q", "epoch_loss_q")):
            if key.startswith(old):
                del record[key]
                record[new + key.removeprefix(old)] = value
    record.setdefault("problem", LINE.name)
    record["metrics"] = [metric.as_dict() for metric in LINE.table]
    final, optimum = _number(info.get("final_mse")), _number(info.get("optimum_mse"))
    slope, intercept = _number(info.get("slope")), _number(info.get("intercept"))
    targets = _number(info.get("target_slope")), _number(info.get("target_intercept"))
    record["excess_loss"] = _minus(final, optimum)
    record["slope_error"] = _off(slope, targets[0])
    record["intercept_error"] = _off(intercept, targets[1])
    apart = (
        _minus(slope, _number(info.get("optimum_slope"))),
        _minus(intercept, _number(info.get("optimum_intercept"))),
    )
    record["distance"] = None if None in apart else math.hypot(*apart)  # type: ignore[arg-type]
    lists = [info.get(key) for key in ("seed_final_mse", "seed_optimum_mse", "seed_slope", "seed_intercept")]
    if all(isinstance(values, list) for values in lists):
        finals, optima, slopes, intercepts = ([_number(v) for v in values] for values in lists)  # type: ignore[union-attr]
        record["seed_excess_loss"] = [_minus(a, b) for a, b in zip(finals, optima, strict=True)]
        record["seed_slope_error"] = [_off(value, targets[0]) for value in slopes]
        record["seed_intercept_error"] = [_off(value, targets[1]) for value in intercepts]
        record["seed_distance"] = [None] * len(finals)  # schema 2 kept no seed's reference but the first's
        if finals:
            record["seed_distance"][0] = record["distance"]
    for key in ("optimum_slope", "optimum_intercept", "target_slope", "target_intercept"):
        record.pop(key, None)
    return record
