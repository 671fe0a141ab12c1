"""Convergence bounds, and the one check that benchmarks, tests and the engine share."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from optbench.problems import Metric
from optbench.record import Status, bounded, metric_table, quantile_field, spread
from optbench.record.numbers import or_inf

DIVERGENCE_FACTOR = 2.0
"""A run diverged when a loss became NaN or infinite, or when its final loss ends more than this many
times as far above the reference solution's loss as the loss before training was.

Measured against the reference's loss (the excess a run can remove), so that a problem's irreducible
loss neither hides a blow-up nor makes one of its own. Measured on 2026-12-04 (torch 2.13 CPU): of
the 3,606 seeds of the registered cases (every problem's float32 matrix, the line in bfloat16), all
finite, none ended more than 1.12 times as far from the reference as it started (1.111: Rprop on the
sine at batch size 10, whose loss peaks mid-run at up to 670,000 times its start and comes back, and
converged runs peak at up to 27,700 times: a peak is no divergence, so only the final loss counts).
A grid of learning rates 0.03 to 100 (SGD, Adam, RMSprop, Adagrad and Rprop on every problem, 4
seeds: 840 seeds, 92 not finite) ends with no gap: of the 748 finite seeds, 546 below 1 time, 42
between 1 and 2, 14 between 2 and 3, 146 above 3 (up to 1e13); Adam at lr 1 on the line ends 2.2 to
4.6 times, RMSprop at lr 1 on the logistic problem 0.7 to 1.6 times. Twice as far from the reference
as at the start is a run that went the wrong way, not one that is slow or noisy."""

STALL_TOLERANCE = 0.01
"""A run stalled when it ended outside its bounds and its full-data loss never moved this share of
the way from the loss before training to the reference's, at any epoch (up or down).

Measured on 2026-12-04 (torch 2.13 CPU): the run of the report that prompted it went from 256.6 to
256.9 on the line, 0.12% of the way; an optimizer whose steps are lost moves less (SGD at lr 1e-9:
0.0001% to 0.007%). The slowest seed of the registered cases moves 1.2% (L-BFGS on the sine at
batch size 10, seed 0, which after its first epoch keeps one loss for 99 epochs; over 32 seeds, 2
move 0.09% and 0.24% and stall, the rest 1.2% to 34%). A learning rate 10,000 times too small moves
0.66% (SGD at lr 1e-5, batch size 100, on the line): less than 1% of the way in the whole run is no
progress worth the name."""


@dataclass(frozen=True)
class Thresholds:
    """How a run is judged, beyond its problem's own bounds.

    Attributes:
        bounds: bounds by metric name that replace the problem's (which the record
            carries in its ``metrics`` table); empty keeps the problem's.
        quantile: for a record of several seeds, the nearest-rank quantile over
            seeds that must be within each bound (0.95 of 32 seeds lets one seed
            miss); 1.0 demands every seed.
        divergence: a run whose final loss ends more than this many times as far above the
            reference's loss as it started diverged (``DIVERGENCE_FACTOR``); above 1.
        stall: a run that missed a bound and whose loss never moved this share of the way
            to the reference's stalled (``STALL_TOLERANCE``); in [0, 1).
    """

    bounds: Mapping[str, float] = field(default_factory=dict)
    quantile: float = 0.95
    divergence: float = DIVERGENCE_FACTOR
    stall: float = STALL_TOLERANCE

    def __post_init__(self) -> None:
        if not 0 < self.quantile <= 1:
            raise ValueError(f"Thresholds.quantile must be in (0, 1], got {self.quantile!r}")
        if not 1 < self.divergence < math.inf:
            raise ValueError(
                f"Thresholds.divergence must be a finite number above 1, got {self.divergence!r}"
            )
        if not 0 <= self.stall < 1:
            raise ValueError(f"Thresholds.stall must be in [0, 1), got {self.stall!r}")
        object.__setattr__(self, "bounds", MappingProxyType(dict(self.bounds)))

    def judged(self, record: Mapping[str, Any]) -> tuple[Metric, ...]:
        """The record's bounded metrics, with these bounds where given.

        Raises:
            ValueError: a bound names a metric the record's problem does not have.
        """
        metrics = metric_table(record)
        unknown = sorted(set(self.bounds) - {metric.name for metric in metrics})
        if unknown:
            raise ValueError(
                f"{record['id']}: no metric {unknown[0]!r} to bound; its problem has "
                f"{', '.join(metric.name for metric in metrics)}"
            )
        return _judged(metrics, tuple(sorted(self.bounds.items())))


@functools.lru_cache(maxsize=256)
def _judged(metrics: tuple[Metric, ...], bounds: tuple[tuple[str, float], ...]) -> tuple[Metric, ...]:
    """The bounded metrics of a table with ``bounds`` applied: one table is judged for many records."""
    given = dict(bounds)
    return bounded(replace(m, bound=given.get(m.name, m.bound)) for m in metrics)


DEFAULT_THRESHOLDS = Thresholds()
"""Each problem's own bounds (the line's: docs/calibration.md), at the 0.95 quantile over seeds."""


class ConvergenceError(AssertionError):
    """A run ended too far from the optimum; the message lists every miss."""


def failures(record: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list[str]:
    """Every bound that ``record`` misses, as short readable phrases; the first says how it ended.

    One seed is judged in this order: a loss or a bounded metric that is NaN or infinite is
    ``diverged``; within every bound is converged (an empty list), even where the loss ended above
    its start; a final loss more than ``thresholds.divergence`` times as far above the reference's
    loss as it started is ``diverged``; a loss that never moved ``thresholds.stall`` of the way to
    the reference's is ``stalled`` (that phrase, then each missed bound); else each missed bound.

    Args:
        record: a flat record from the engine (or a saved run's ``extra_info``).
        thresholds: the quantile over seeds, the bounds to replace the problem's, the divergence
            factor and the stall tolerance.

    Returns:
        An empty list when the run converged: for a record of several seeds, when
        ``thresholds.quantile`` of each bounded metric over seeds is within its bound
        and no more seeds diverged than that quantile leaves out (``_seed_failures``).
    """
    judged = thresholds.judged(record)
    if record.get("seeds", 1) > 1:
        return _seed_failures(record, judged, thresholds.quantile)
    final = record["final_loss"]
    if _missing_number(final) or any(_missing_number(record[metric.name]) for metric in judged):
        return [f"diverged: the loss became NaN or infinite within {record['steps']} steps"]
    missed = []
    for metric in judged:
        value = record[metric.name]
        if not value <= metric.bound:  # type: ignore[operator]
            detail = (
                f" (final {final:.4g}, reference {record['reference_loss']:.4g})"
                if metric.name == "excess_loss"
                else ""
            )
            missed.append(f"{metric.label} {value:.4g} > {metric.bound:g}{detail}")
    if not missed:
        return []
    ending = _ending(record, thresholds)
    if ending is None:
        return missed
    return [ending] if ending.startswith("diverged") else [ending, *missed]


def _missing_number(value: Any) -> bool:
    """``None`` (a saved record's non-finite number) or NaN (a row read into pandas)."""
    return value is None or value != value


def _ending(record: Mapping[str, Any], thresholds: Thresholds) -> str | None:
    """Whether a one-seed run that missed a bound diverged or stalled, as its phrase; ``None``: neither.

    Both measure the loss against the reference's (zero where the record has none): the excess
    before training is how far the run could go. A run that started at or below the reference's
    loss has no way to go, so any rise past it diverged and only a loss that never changed stalled.
    A saved record without its loss before training (``null``) is neither.
    """
    curve = list(record["epoch_loss"])
    initial = curve[0] if curve else None
    if _missing_number(initial):
        return None
    reference = record.get("reference_loss")
    known = not _missing_number(reference)
    floor = float(reference) if known else 0.0  # type: ignore[arg-type]
    where = f"the reference {floor:.4g}" if known else "zero"
    way = max(initial - floor, 0.0)
    final = record["final_loss"]
    if final - floor > thresholds.divergence * way:
        return (
            f"diverged: final loss {final:.4g} is more than {thresholds.divergence:g} times as far above "
            f"{where} as the initial {initial:.4g}"
        )
    reach = thresholds.stall * way
    # A baseline keeps only the loss before training: there the final loss stands for the curve.
    if all(not _missing_number(loss) and abs(loss - initial) <= reach for loss in [*curve[1:], final]):
        return (
            f"stalled: the loss stayed within {thresholds.stall * 100:g}% of the way from its initial "
            f"{initial:.4g} to {where} (final {final:.4g})"
        )
    return None


def _seed_failures(record: Mapping[str, Any], judged: tuple[Metric, ...], q: float) -> list[str]:
    """The misses of a record of several seeds, judged from each seed's status and the quantiles.

    ``allowed``, the seeds the ``q`` quantile leaves out, may miss. More diverged seeds than that is
    ``diverged``, whatever the rest did. Otherwise the record converged when each bounded metric's
    ``q`` quantile over seeds is within its bound. When it is not, the record ``stalled`` when the
    seeds that moved and missed (or diverged) fit within ``allowed``: every seed missing beyond
    them stalled. Else it did not converge: a stalled seed among many that moved says only that.
    """
    count = record["seeds"]
    allowed = count - max(math.ceil(q * count), 1)
    statuses = list(record["seed_status"])
    diverged = statuses.count("diverged")
    if diverged > allowed:
        return [
            f"diverged: {diverged} of {count} seeds diverged (the {q:g} quantile lets {allowed} miss), "
            f"seeds {_seeds(statuses, record['seed'], 'diverged')}"
        ]
    values = spread.seed_values(record, judged)
    missed = []
    for metric in judged:
        bound = metric.bound
        value = spread.quantile(values[metric.name], q)
        if not value <= bound:  # type: ignore[operator]
            over = sum(not one <= bound for one in values[metric.name])  # type: ignore[operator]
            missed.append(
                f"{metric.label} {value:.4g} > {bound:g} at the {q:g} quantile of {count} seeds "
                f"({over} of {count} seeds over)"
            )
    stalled = statuses.count("stalled")
    if missed and stalled and statuses.count("not_converged") + diverged <= allowed:
        return [
            f"stalled: {stalled} of {count} seeds stalled (the {q:g} quantile lets {allowed} miss), "
            f"seeds {_seeds(statuses, record['seed'], 'stalled')}",
            *missed,
        ]
    return missed


def _seeds(statuses: list[str], first: int, status: str) -> str:
    """The seeds of ``status``, comma-separated: ``first`` is the first seed's number."""
    return ",".join(str(first + index) for index, state in enumerate(statuses) if state == status)


def status(record: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Status:
    """``converged``, ``not_converged``, ``stalled`` or ``diverged``, as ``failures`` judges ``record``.

    What each means is ``STATUS_MEANINGS``, the report's legend.
    """
    missed = failures(record, thresholds)
    if not missed:
        return "converged"
    if missed[0].startswith("diverged:"):
        return "diverged"
    return "stalled" if missed[0].startswith("stalled:") else "not_converged"


STATUS_MEANINGS: Mapping[str, str] = MappingProxyType(
    {
        "converged": "it ended within every bound of its problem's metric table (with several seeds: "
        "the 0.95 quantile over seeds of each bounded metric is within its bound, and no more seeds "
        "diverged than that quantile leaves out).",
        "not_converged": "it ended outside a bound, though its loss moved.",
        "stalled": f"it ended outside a bound, and its full-data loss stayed within "
        f"{STALL_TOLERANCE * 100:g}% of the way from the loss before training to the reference "
        "solution's at every epoch: steps too small to move it, or rounded away (with several "
        "seeds: too many seeds failed, and all but those the quantile leaves out stalled).",
        "diverged": f"a loss became NaN or infinite, or the final loss ended more than "
        f"{DIVERGENCE_FACTOR:g} times as far above the reference solution's loss as the loss before "
        "training (with several seeds: more seeds diverged than the quantile leaves out).",
    }
)
"""What each status says, in ``STATUSES``' order: the report's legend, and the README's."""


def assert_converged(record: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
    """Raises ``ConvergenceError`` naming every bound that ``record`` misses (by default its problem's)."""
    missed = failures(record, thresholds)
    if missed:
        raise ConvergenceError(f"{record['id']} did not converge: " + "; ".join(missed))


def excess_bound(record: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> float | None:
    """The bound on ``record``'s ``excess_loss`` (its problem's, or ``thresholds``'), or ``None`` for none."""
    for metric in thresholds.judged(record):
        if metric.name == "excess_loss":
            return metric.bound
    return None


def first_epoch_within(
    epoch_loss: Sequence[float | None], reference_loss: float | None, bound: float, *, start: int = 1
) -> int | None:
    """The first epoch from ``start`` on whose full-data loss is within ``bound`` of the reference.

    Args:
        epoch_loss: the full-data loss before training (index 0) and after each epoch; a missing
            loss (``None``, or NaN in a row read into pandas) is never within.
        reference_loss: the reference solution's loss (``None`` or NaN: no epoch is within).
        bound: the largest excess, ``loss - reference_loss``, that counts as within.
        start: the first epoch to look at: 1 skips the loss before training.

    Returns:
        The epoch, or ``None`` when none from ``start`` on got there.
    """
    if _missing_number(reference_loss):
        return None
    for epoch in range(start, len(epoch_loss)):
        loss = epoch_loss[epoch]
        if loss is not None and loss - reference_loss <= bound:  # type: ignore[operator]
            return epoch
    return None


def epochs_to_converge(record: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> int | None:
    """The first epoch whose full-data loss is within the excess-loss bound of the reference.

    Returns:
        The epoch (1-based), or ``None`` when no epoch got there.

    Raises:
        ValueError: the record's problem (or ``thresholds``) bounds no ``excess_loss``.
    """
    bound = excess_bound(record, thresholds)
    if bound is None:
        raise ValueError(f"{record['id']}: its problem bounds no excess_loss, so no epoch gets within it")
    return first_epoch_within(record["epoch_loss"], record["reference_loss"], bound, start=1)


def time_to_target(
    record: Mapping[str, Any], steps_per_epoch: int, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> tuple[int | None, float | None]:
    """The optimizer step at which a one-seed record's loss first got within its excess bound, and its time.

    The step is ``min(e * steps_per_epoch, steps)`` for the first epoch ``e`` (0: before training)
    whose full-data loss (``epoch_loss``) was within the ``excess_loss`` bound of
    ``reference_loss``, as ``epochs_to_converge`` finds it from epoch 1 on. The time is an estimate
    from a uniform step rate: the record's training ``seconds`` x step / ``steps``.

    Args:
        record: one seed's record: ``epoch_loss``, ``reference_loss``, ``steps``, ``seconds`` and
            the ``metrics`` table.
        steps_per_epoch: optimizer steps per epoch, ``ceil(n / batch_size)`` for ``n`` samples.
        thresholds: bounds to replace the problem's (by default its own).

    Returns:
        ``(target_step, target_seconds)``, both ``None`` when no epoch got within the bound or
        the problem bounds no ``excess_loss``.
    """
    bound = excess_bound(record, thresholds)
    if bound is None:
        return None, None
    epoch = first_epoch_within(record["epoch_loss"], record["reference_loss"], bound, start=0)
    if epoch is None:
        return None, None
    steps = int(record["steps"])
    step = min(epoch * steps_per_epoch, steps)
    seconds = float(record["seconds"]) * step / steps if steps else 0.0
    return step, seconds if math.isfinite(seconds) else None


def assert_falls_faster(
    fast: Mapping[str, Any], slow: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> None:
    """Raises ``ConvergenceError`` unless ``fast``'s loss falls faster than ``slow``'s.

    Faster means a lower full-data loss after the first epoch and fewer epochs to
    get within the excess-loss bound of the reference.
    """
    fast_epochs, slow_epochs = epochs_to_converge(fast, thresholds), epochs_to_converge(slow, thresholds)
    first = fast["epoch_loss"][1], slow["epoch_loss"][1]
    problems = []
    if first[0] is None or (first[1] is not None and not first[0] < first[1]):
        problems.append(f"after epoch 1 its loss is {first[0]} against {first[1]}")
    if fast_epochs is None or (slow_epochs is not None and not fast_epochs < slow_epochs):
        problems.append(f"it needs {fast_epochs} epochs to converge against {slow_epochs}")
    if problems:
        raise ConvergenceError(f"{fast['id']} does not fall faster than {slow['id']}: " + "; ".join(problems))


@dataclass(frozen=True)
class Tolerances:
    """How much worse a scenario may end than in a baseline run of the same scenario.

    Attributes:
        growth: largest allowed growth by metric name, replacing the tolerances of the
            baseline's metric table (the line's are calibrated in docs/calibration.md);
            ``"*"`` sets every metric's that has one at once (a metric named here is gated
            even where its table gives it no tolerance). 0 allows no growth at all.
        time_ratio: largest allowed ratio of median times, or ``None`` to ignore
            time (timings from different machines do not compare).
    """

    growth: Mapping[str, float] = field(default_factory=dict)
    time_ratio: float | None = None

    def __post_init__(self) -> None:
        for name, value in self.growth.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"Tolerances.growth[{name!r}] must be a non-negative number, got {value!r}")
        if self.time_ratio is not None and not 0 < self.time_ratio < math.inf:
            raise ValueError(
                f"Tolerances.time_ratio must be a positive number or None, got {self.time_ratio!r}"
            )
        object.__setattr__(self, "growth", MappingProxyType(dict(self.growth)))

    def gated(self, record: Mapping[str, Any]) -> tuple[Metric, ...]:
        """The metrics of ``record``'s table that the gate compares, with these tolerances where given."""
        every = self.growth.get("*")
        metrics = []
        for metric in metric_table(record):
            tolerance = metric.tolerance if every is None or metric.tolerance is None else every
            metrics.append(replace(metric, tolerance=self.growth.get(metric.name, tolerance)))
        return tuple(metric for metric in metrics if metric.tolerance is not None)


DEFAULT_TOLERANCES = Tolerances()
"""The baseline's own tolerances per metric, and no timing check."""

_STATUS_RANK = {"converged": 0, "not_converged": 1, "stalled": 1, "diverged": 2}
"""How bad each status is, for the gate: converged, then failing, then diverged. ``stalled`` and
``not_converged`` rank alike: both ended outside a bound, and how far outside is the metrics' to
say (each gated metric's growth), while a seed near the stall tolerance may fall either side of it
from one build to the next. A status the record schema does not know ranks as diverged."""


def regressions(
    before: Mapping[str, Any], after: Mapping[str, Any], tolerances: Tolerances = DEFAULT_TOLERANCES
) -> list[str]:
    """Every way ``after`` is worse than ``before`` (two records of one scenario), as phrases.

    Each metric the baseline's table gives a tolerance (all are errors: lower is better) may
    grow by at most that much: the first seed's value and, when both ran the same number of
    seeds (more than one), its 0.95 quantile over seeds. Missing numbers (a diverged run) count
    as infinitely far off. A status that ranks worse (``_STATUS_RANK``: not_converged and stalled
    alike) is named first.
    """
    found = []
    if _STATUS_RANK.get(after["status"], 2) > _STATUS_RANK.get(before["status"], 2):
        found.append(f"status {before['status']} -> {after['status']}")
        if after["status"] == "diverged":
            return found  # its numbers are gone or far off; listing each would only repeat it
    seeds = _value(before, "seeds")
    same_seeds = seeds > 1 and not math.isinf(seeds) and seeds == _value(after, "seeds")
    for metric in tolerances.gated(before):
        tolerance = metric.tolerance
        growth = _difference(after, before, metric.name)
        if not growth <= tolerance:  # type: ignore[operator]
            found.append(f"{metric.label} grew by {growth:.4g} (tolerance {tolerance:g})")
        field_name = quantile_field(metric.name, 0.95)
        if same_seeds and metric.bound is not None:
            growth = _difference(after, before, field_name)
            if not growth <= tolerance:  # type: ignore[operator]
                found.append(
                    f"0.95 quantile of the {metric.label} over {seeds:g} seeds grew by {growth:.4g} "
                    f"(tolerance {tolerance:g})"
                )
    if tolerances.time_ratio is not None:
        ratio = _ratio(after.get("median"), before.get("median"))
        if ratio > tolerances.time_ratio:  # NaN (no timing on one side) is not compared
            found.append(f"median time x{ratio:.3g} (tolerance x{tolerances.time_ratio:g})")
    return found


def _value(record: Mapping[str, Any], name: str) -> float:
    return or_inf(record.get(name))


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
