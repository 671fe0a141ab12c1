"""Convergence bounds, and the one check that benchmarks, tests and the engine share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from optbench import spread
from optbench.record import Status


@dataclass(frozen=True)
class Thresholds:
    """How close a run must end to the data's optimum and to the true line.

    Attributes:
        excess_mse: largest allowed ``final_mse - optimum_mse``.
        slope: largest allowed ``|slope - target_slope|``.
        intercept: largest allowed ``|intercept - target_intercept|``.
        quantile: for a record of several seeds, the nearest-rank quantile over
            seeds that must be within each bound (0.95 of 32 seeds lets one seed
            miss); 1.0 demands every seed.
    """

    excess_mse: float
    slope: float
    intercept: float
    quantile: float = 0.95

    def __post_init__(self) -> None:
        if not 0 < self.quantile <= 1:
            raise ValueError(f"Thresholds.quantile must be in (0, 1], got {self.quantile!r}")


# Calibrated over 200 seeds of every default scenario: docs/calibration.md
# gives the worst values and margins; `python -m optbench.calibrate` remeasures.
DEFAULT_THRESHOLDS = Thresholds(excess_mse=0.3, slope=0.2, intercept=0.3)

# Per dtype, calibrated over 32 seeds of every default case (docs/calibration-dtypes.md).
# The same bounds hold in all three. Over the cases that must converge, the worst float64
# values are 0.107 (excess MSE), 0.118 (slope) and 0.186 (intercept); the worst bfloat16
# ones 0.214, 0.148 and 0.188. Where bfloat16 does not converge it stalls far outside any
# bound (the registry's dtype_failures).
DTYPE_THRESHOLDS = MappingProxyType(
    {"float32": DEFAULT_THRESHOLDS, "float64": DEFAULT_THRESHOLDS, "bfloat16": DEFAULT_THRESHOLDS}
)


def thresholds_for(record: Mapping[str, Any]) -> Thresholds:
    """The bounds for ``record``'s dtype (float32's for a record without one)."""
    return DTYPE_THRESHOLDS.get(str(record.get("dtype", "float32")), DEFAULT_THRESHOLDS)


class ConvergenceError(AssertionError):
    """A run ended too far from the optimum; the message lists every miss."""


def failures(record: Mapping[str, Any], thresholds: Thresholds | None = None) -> list[str]:
    """Every bound that ``record`` misses, as short readable phrases.

    Args:
        record: a flat record from the engine (or a saved run's ``extra_info``).
        thresholds: the bounds to hold it to; by default those of its dtype.

    Returns:
        An empty list when the run converged: for a record of several seeds, when
        ``thresholds.quantile`` of each error over seeds is within its bound and
        no more seeds diverged than that quantile leaves out.
    """
    thresholds = thresholds or thresholds_for(record)
    if record.get("seeds", 1) > 1:
        return _seed_failures(record, thresholds)
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


def _seed_failures(record: Mapping[str, Any], thresholds: Thresholds) -> list[str]:
    count, q = record["seeds"], thresholds.quantile
    allowed = count - max(math.ceil(q * count), 1)
    diverged = list(record["seed_status"]).count("diverged")
    if diverged > allowed:
        return [
            f"diverged: {diverged} of {count} seeds diverged (the {q:g} quantile lets {allowed} miss), "
            f"seeds {_missing(record['seed_status'], record['seed'])}"
        ]
    errors = spread.seed_errors(record)
    missed = []
    for metric, bound, label in (
        ("excess_mse", thresholds.excess_mse, "excess MSE"),
        ("slope_error", thresholds.slope, "slope error"),
        ("intercept_error", thresholds.intercept, "intercept error"),
    ):
        value = spread.quantile(errors[metric], q)
        if not value <= bound:
            over = sum(not error <= bound for error in errors[metric])
            missed.append(
                f"{label} {value:.4g} > {bound:g} at the {q:g} quantile of {count} seeds "
                f"({over} of {count} seeds over)"
            )
    return missed


def _missing(statuses: list[str], first: int) -> str:
    return ",".join(str(first + index) for index, state in enumerate(statuses) if state == "diverged")


def status(record: Mapping[str, Any], thresholds: Thresholds | None = None) -> Status:
    """``converged``, ``not_converged``, or ``diverged`` (non-finite, or ended worse than it started)."""
    missed = failures(record, thresholds)
    if not missed:
        return "converged"
    return "diverged" if missed[0].startswith("diverged") else "not_converged"


def assert_converged(record: Mapping[str, Any], thresholds: Thresholds | None = None) -> None:
    """Raises ``ConvergenceError`` naming every bound that ``record`` misses (by default its dtype's)."""
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


@dataclass(frozen=True)
class Tolerances:
    """How much worse a scenario may end than in a baseline run of the same scenario.

    Attributes:
        excess_mse: largest allowed growth of ``final_mse - optimum_mse``.
        slope: largest allowed move of the fitted slope away from the true slope
            (any move, when the true line is unknown).
        intercept: the same for the intercept.
        time_ratio: largest allowed ratio of median times, or ``None`` to ignore
            time (timings from different machines do not compare).
    """

    excess_mse: float
    slope: float
    intercept: float
    time_ratio: float | None = None


# Calibrated in docs/calibration.md ("Run-to-run tolerances"): the same runs in float64
# instead of float32 (rounding alone) move the excess MSE by up to about 0.02, and the
# slope and intercept by up to about 0.11 and 0.17 where a run ends in a limit cycle
# (Muon at batch size 10, Adadelta at 50 and 100) whose phase rounding shifts. Each
# tolerance sits above that; the excess MSE check is the sharp one.
DEFAULT_TOLERANCES = Tolerances(excess_mse=0.05, slope=0.15, intercept=0.25)

_STATUS_RANK = {"converged": 0, "not_converged": 1, "diverged": 2}


def regressions(
    before: Mapping[str, Any], after: Mapping[str, Any], tolerances: Tolerances = DEFAULT_TOLERANCES
) -> list[str]:
    """Every way ``after`` is worse than ``before`` (two records of one scenario), as phrases.

    Missing numbers (a diverged run) count as infinitely far off. The first seed's
    fit is compared, and, when both ran the same number of seeds (more than one),
    the 0.95 quantile of the excess MSE over seeds.
    """
    found = []
    if _STATUS_RANK.get(after["status"], 2) > _STATUS_RANK.get(before["status"], 2):
        found.append(f"status {before['status']} -> {after['status']}")
        if after["status"] == "diverged":
            return found  # its numbers are gone; listing each would only repeat it
    growth = _difference(after, before, "excess_mse")
    if not growth <= tolerances.excess_mse:
        found.append(f"excess MSE grew by {growth:.4g} (tolerance {tolerances.excess_mse:g})")
    seeds = _value(before, "seeds")
    if seeds > 1 and not math.isinf(seeds) and seeds == _value(after, "seeds"):
        growth = _difference(after, before, "excess_mse_q95")
        if not growth <= tolerances.excess_mse:
            found.append(
                f"0.95 quantile of the excess MSE over {seeds:g} seeds grew by {growth:.4g} "
                f"(tolerance {tolerances.excess_mse:g})"
            )
    for name, tolerance in (("slope", tolerances.slope), ("intercept", tolerances.intercept)):
        if math.isinf(_value(before, name)):
            continue  # the baseline had no fit to drift from
        target = before.get(f"target_{name}", after.get(f"target_{name}"))
        if target is None:  # no true line known: any move counts
            drift = abs(_difference(after, before, name))
            text = f"{name} moved by {drift:.4g}"
        else:  # only a move away from the true line counts
            drift = abs(_value(after, name) - target) - abs(_value(before, name) - target)
            text = f"{name} moved {drift:.4g} further from {target:g}"
        if not drift <= tolerance:
            found.append(f"{text} (tolerance {tolerance:g})")
    if tolerances.time_ratio is not None:
        ratio = _ratio(after.get("median"), before.get("median"))
        if ratio > tolerances.time_ratio:  # NaN (no timing on one side) is not compared
            found.append(f"median time x{ratio:.3g} (tolerance x{tolerances.time_ratio:g})")
    return found


def _value(record: Mapping[str, Any], name: str) -> float:
    if name == "excess_mse" and "excess_mse" not in record:
        final = record.get("final_mse")
        return math.inf if final is None else final - record["optimum_mse"]
    value = record.get(name)
    return math.inf if value is None or value != value else float(value)


def _difference(after: Mapping[str, Any], before: Mapping[str, Any], name: str) -> float:
    new, old = _value(after, name), _value(before, name)
    if math.isinf(new) and math.isinf(old):
        return 0.0
    return new - old


def _ratio(new: float | None, old: float | None) -> float:
    if new is None or old is None or not old > 0:
        return math.nan
    return new / old


def assert_not_regressed(
    record: Mapping[str, Any],
    baseline: Mapping[str, Mapping[str, Any]] | None,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
) -> None:
    """Raises ``ConvergenceError`` when ``record`` ended worse than its baseline record.

    Args:
        record: a fresh run's record.
        baseline: baseline records by scenario id; ``None``, or no entry for this
            scenario, means nothing to compare against.
        tolerances: how much worse it may end; timings are never compared here.
    """
    before = (baseline or {}).get(record["id"])
    if before is None:
        return
    found = regressions(before, record, replace(tolerances, time_ratio=None))
    if found:
        raise ConvergenceError(f"{record['id']} regressed against the baseline: " + "; ".join(found))
