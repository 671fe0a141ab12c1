"""Statistics over the seeds of one scenario: per-seed finals, quantiles, pass rate and bands.

Quantiles use the nearest-rank definition: the q-quantile of K values is the
``ceil(q * K)``-th smallest. It is always one seed's actual value, never an
interpolation, so a diverged seed (counted as infinitely far off) moves a
quantile only when it is that seed's rank, and one seed's quantiles are its
own values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

QUANTILES = (0.1, 0.5, 0.9, 0.95)
"""The quantiles every record holds for each error (``excess_mse_q95`` and so on)."""

BAND = (0.1, 0.5, 0.9)
"""The quantiles of the per-epoch MSE the report draws: the median and the 10-90% band."""

ERRORS = ("excess_mse", "slope_error", "intercept_error")
"""The per-seed errors that quantiles are taken of."""


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-quantile of ``values`` (NaN counts as infinite).

    Raises:
        ValueError: ``values`` is empty or ``q`` is outside ``(0, 1]``.
    """
    if not values:
        raise ValueError("quantile of no values")
    if not 0 < q <= 1:
        raise ValueError(f"quantile {q!r} is outside (0, 1]")
    ordered = sorted(math.inf if value != value else value for value in values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def name(metric: str, q: float) -> str:
    """The record field of a quantile: ``name("excess_mse", 0.95)`` is ``"excess_mse_q95"``."""
    return f"{metric}_q{round(q * 100):02d}"


def seed_errors(record: Mapping[str, Any]) -> dict[str, list[float]]:
    """Per-seed excess MSE and distances of slope and intercept from the true line; ``inf`` when missing."""

    def number(value: Any) -> float:
        return math.inf if value is None or value != value else float(value)

    finals, optima = record["seed_final_mse"], record["seed_optimum_mse"]
    excess = [number(final) - number(optimum) for final, optimum in zip(finals, optima, strict=True)]
    errors = {"excess_mse": [value if value == value else math.inf for value in excess]}
    for part in ("slope", "intercept"):
        target = number(record[f"target_{part}"])
        errors[f"{part}_error"] = [abs(number(value) - target) for value in record[f"seed_{part}"]]
    return errors


def error_quantiles(record: Mapping[str, Any]) -> dict[str, float | None]:
    """The quantile fields (``excess_mse_q95``, ...) of the errors in a record's ``seed_*`` lists.

    A quantile that is not finite (a diverged seed at that rank) is ``None``.
    """
    errors = seed_errors(record)
    fields: dict[str, float | None] = {}
    for metric in ERRORS:
        for q in QUANTILES:
            value = quantile(errors[metric], q)
            fields[name(metric, q)] = value if math.isfinite(value) else None
    return fields


def band(curves: Sequence[Sequence[float | None]], q: float) -> list[float | None]:
    """Pointwise ``q``-quantile of per-seed curves; a seed's missing point (it diverged) is infinite."""
    length = max((len(curve) for curve in curves), default=0)
    points = []
    for index in range(length):
        values = [
            math.inf if index >= len(curve) or curve[index] is None else float(curve[index])  # type: ignore[arg-type]
            for curve in curves
        ]
        value = quantile(values, q)
        points.append(value if math.isfinite(value) else None)
    return points


def over_seeds(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The multi-seed fields of a record from each seed's own record, in seed order.

    Returns:
        ``seeds``, the ``seed_*`` lists, ``pass_rate``, a quantile field per
        error and ``QUANTILES`` entry, and the ``epoch_mse`` band.
    """
    fields: dict[str, Any] = {
        "seeds": len(records),
        "seed_final_mse": [r["final_mse"] for r in records],
        "seed_optimum_mse": [r["optimum_mse"] for r in records],
        "seed_slope": [r["slope"] for r in records],
        "seed_intercept": [r["intercept"] for r in records],
        "seed_status": [r["status"] for r in records],
        "pass_rate": sum(r["status"] == "converged" for r in records) / len(records),
    }
    targets = {key: records[0][key] for key in ("target_slope", "target_intercept")}
    fields.update(error_quantiles({**fields, **targets}))
    curves = [r["epoch_mse"] for r in records]
    for q in BAND:
        fields[name("epoch_mse", q)] = band(curves, q)
    return fields
