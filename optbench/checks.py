"""Convergence bounds, and the one check that benchmarks, tests and the engine share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optbench.record import Status


@dataclass(frozen=True)
class Thresholds:
    """How close a run must end to the data's optimum and to the true line.

    Attributes:
        excess_mse: largest allowed ``final_mse - optimum_mse``.
        slope: largest allowed ``|slope - target_slope|``.
        intercept: largest allowed ``|intercept - target_intercept|``.
    """

    excess_mse: float
    slope: float
    intercept: float


# Calibrated over 200 seeds of every default scenario: docs/calibration.md
# gives the worst values and margins; `python -m optbench.calibrate` remeasures.
DEFAULT_THRESHOLDS = Thresholds(excess_mse=0.3, slope=0.2, intercept=0.3)


class ConvergenceError(AssertionError):
    """A run ended too far from the optimum; the message lists every miss."""


def failures(record: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list[str]:
    """Every bound that ``record`` misses, as short readable phrases.

    Args:
        record: a flat record from the engine (or a saved run's ``extra_info``).
        thresholds: the bounds to hold it to.

    Returns:
        An empty list when the run converged.
    """
    final, slope, intercept = record["final_mse"], record["slope"], record["intercept"]
    if final is None or slope is None or intercept is None:
        return [f"diverged: the loss became NaN or infinite within {record['steps']} steps"]
    initial = record["epoch_mse"][0]
    if initial is not None and final > initial:
        return [f"diverged: final MSE {final:.4g} is above the initial {initial:.4g}"]
    missed = []
    excess = final - record["optimum_mse"]
    if not excess <= thresholds.excess_mse:
        missed.append(
            f"excess MSE {excess:.4g} > {thresholds.excess_mse:g} "
            f"(final {final:.4g}, least-squares optimum {record['optimum_mse']:.4g})"
        )
    for name, bound in (("slope", thresholds.slope), ("intercept", thresholds.intercept)):
        value, target = record[name], record[f"target_{name}"]
        if not abs(value - target) <= bound:
            missed.append(
                f"{name} {value:.4g} is {abs(value - target):.3g} from {target:g} (bound {bound:g})"
            )
    return missed


def status(record: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Status:
    """``converged``, ``not_converged``, or ``diverged`` (non-finite, or ended worse than it started)."""
    missed = failures(record, thresholds)
    if not missed:
        return "converged"
    return "diverged" if missed[0].startswith("diverged") else "not_converged"


def assert_converged(record: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
    """Raises ``ConvergenceError`` naming every bound that ``record`` misses."""
    missed = failures(record, thresholds)
    if missed:
        raise ConvergenceError(f"{record['id']} did not converge: " + "; ".join(missed))


def epochs_to_converge(record: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> int | None:
    """The first epoch whose full-data MSE is within ``thresholds.excess_mse`` of the optimum.

    Returns:
        The epoch (1-based), or ``None`` when no epoch got there.
    """
    limit = record["optimum_mse"] + thresholds.excess_mse
    for epoch, mse in enumerate(record["epoch_mse"]):
        if epoch > 0 and mse is not None and mse <= limit:
            return epoch
    return None


def assert_falls_faster(
    fast: Mapping[str, Any], slow: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> None:
    """Raises ``ConvergenceError`` unless ``fast``'s loss falls faster than ``slow``'s.

    Faster means a lower full-data MSE after the first epoch and fewer epochs to
    get within ``thresholds.excess_mse`` of the optimum.
    """
    fast_epochs, slow_epochs = epochs_to_converge(fast, thresholds), epochs_to_converge(slow, thresholds)
    first = fast["epoch_mse"][1], slow["epoch_mse"][1]
    problems = []
    if first[0] is None or (first[1] is not None and not first[0] < first[1]):
        problems.append(f"after epoch 1 its MSE is {first[0]} against {first[1]}")
    if fast_epochs is None or (slow_epochs is not None and not fast_epochs < slow_epochs):
        problems.append(f"it needs {fast_epochs} epochs to converge against {slow_epochs}")
    if problems:
        raise ConvergenceError(f"{fast['id']} does not fall faster than {slow['id']}: " + "; ".join(problems))
