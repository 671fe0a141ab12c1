"""Statistics over the seeds of one scenario: per-seed finals, quantiles, pass rate, bands, time to target.

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

from optbench.problems import Metric
from optbench.record import BAND, QUANTILES, SEED_STATUS, bounded, quantile_field, seed_field
from optbench.record.numbers import or_inf


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


def seed_values(record: Mapping[str, Any], metrics: Sequence[Metric]) -> dict[str, list[float]]:
    """Each bounded metric's per-seed values from the record's ``seed_*`` lists; ``inf`` where missing."""
    return {
        metric.name: [or_inf(value) for value in record[seed_field(metric.name)]]
        for metric in bounded(metrics)
    }


def metric_quantiles(record: Mapping[str, Any], metrics: Sequence[Metric]) -> dict[str, float | None]:
    """The quantile fields (``excess_loss_q95``, ...) of the bounded metrics in a record's ``seed_*`` lists.

    A quantile that is not finite (a diverged seed at that rank) is ``None``.
    """
    fields: dict[str, float | None] = {}
    for name, values in seed_values(record, metrics).items():
        for q in QUANTILES:
            value = quantile(values, q)
            fields[quantile_field(name, q)] = value if math.isfinite(value) else None
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


def over_seeds(records: Sequence[Mapping[str, Any]], metrics: Sequence[Metric]) -> dict[str, Any]:
    """The multi-seed fields of a record from each seed's own record, in seed order.

    Returns:
        ``seeds``, a ``seed_<metric>`` list per metric and ``seed_status``, ``pass_rate``, a
        quantile field per bounded metric and ``QUANTILES`` entry, and the ``epoch_loss`` band.
    """
    fields: dict[str, Any] = {"seeds": len(records)}
    for metric in metrics:
        fields[seed_field(metric.name)] = [r[metric.name] for r in records]
    fields[SEED_STATUS.name] = [r["status"] for r in records]
    fields["pass_rate"] = sum(r["status"] == "converged" for r in records) / len(records)
    fields.update(metric_quantiles(fields, metrics))
    curves = [r["epoch_loss"] for r in records]
    for q in BAND:
        fields[quantile_field("epoch_loss", q)] = band(curves, q)
    return fields


def median_step(steps: Sequence[int | None]) -> int | None:
    """The nearest-rank median of per-seed steps, a missing one (never got there) infinitely late.

    ``None`` when the median is such a seed: when fewer than half the seeds got there.
    """
    value = quantile([math.inf if step is None else step for step in steps], 0.5)
    return int(value) if math.isfinite(value) else None


def over_seeds_to_target(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The time-to-target fields of a record from each seed's own record, in seed order.

    Returns:
        ``seed_target_step`` and ``seed_target_seconds`` (each seed's ``target_step`` and
        ``target_seconds``) and ``target_step_q50``, their median step (``median_step``).
    """
    steps = [r["target_step"] for r in records]
    return {
        seed_field("target_step"): steps,
        seed_field("target_seconds"): [r["target_seconds"] for r in records],
        quantile_field("target_step", 0.5): median_step(steps),
    }
