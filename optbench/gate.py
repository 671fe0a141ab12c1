"""``python -m optbench.gate``: fail CI when a candidate run converges worse than a baseline run.

Exit 1 when any scenario got worse (its status, or a metric that its problem gates
growing beyond its tolerance, and with ``--max-time-ratio`` its median time), or newly
became an expected failure; exit 0 otherwise; exit 2 when the runs cannot be compared
(a file that does not match the record schema, a scenario twice in one run).
Which cases may fail is the gate's to say, from its registry and the baseline run,
never the candidate's.

Statuses rank converged, then not_converged and stalled alike, then diverged: a status that
ranks worse is a regression (converged to any other; not_converged or stalled to diverged). A
change between not_converged and stalled is listed but not gated by itself: both ended outside a
bound, the metrics' growth says whether it ended further out, and a seed near the stall tolerance
may fall on either side of it from one build to the next. A baseline saved before schema 4 says
``diverged`` also of runs that ended only a little above their start, which today's vocabulary
calls not_converged or stalled: that change ranks better, and is listed, not gated.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from optbench.optimizers.registry import IMPLS, OPTIMIZERS, SEED_PROFILE, Registry
from optbench.options import add_storage_option
from optbench.problems import PROBLEMS, Metric, Problem
from optbench.record.checks import Tolerances
from optbench.results import ResultsError, find_run, load, metrics_of
from optbench.results.tables import KEYS, compare

PROG = "python -m optbench.gate"


class GateError(Exception):
    """The two runs cannot be compared; the message says why and what to do."""


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not number > 0 or math.isinf(number):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def _growth(value: str) -> tuple[str, float]:
    """``"excess_loss=0.05"`` -> ``("excess_loss", 0.05)``; ``all=0`` sets every metric's (``"*"``)."""
    name, equals, number = value.partition("=")
    try:
        tolerance = float(number) if equals and name.strip() else math.nan
    except ValueError:
        tolerance = math.nan
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise argparse.ArgumentTypeError(
            f"expected METRIC=X with X a non-negative number (or all=X), got {value!r}"
        )
    name = name.strip()
    return ("*" if name == "all" else name), tolerance


def _defaults(problem: Problem) -> str:
    return ", ".join(f"{m.name}={m.tolerance:g}" for m in problem.table if m.tolerance is not None)


def _check_metrics(tolerances: Tolerances, metrics: tuple[Metric, ...]) -> None:
    """Raises ``GateError`` for a ``--max-growth`` that names no judged metric of either run.

    A judged metric has a bound or a tolerance: an error, where lower is better. A reported one
    (the line's slope) has no direction in which growth is worse.
    """
    judged = [metric.name for metric in metrics if metric.bound is not None or metric.tolerance is not None]
    for name in tolerances.growth:
        if name == "*" or name in judged:
            continue
        if name in {metric.name for metric in metrics}:
            problem = f"{name!r} is reported, not judged (no bound, no tolerance): its growth is not worse"
        else:
            problem = f"neither run has a metric {name!r}"
        raise GateError(f"--max-growth: {problem}; choose from {', '.join(judged)}, or all")


def _load(spec: str, root: Path, role: str) -> pd.DataFrame:
    path = find_run(spec, root)
    frame = load([path]).frame
    print(f"{PROG}: {role} {path}: {frame.id.nunique()} scenario(s)", file=sys.stderr)
    return frame


def _check_comparable(baseline: pd.DataFrame, candidate: pd.DataFrame, allow_failed: bool) -> list[str]:
    """Raises ``GateError`` for runs that cannot be compared; returns warnings for ones that can.

    Runs with no scenario in common are a mismatch. A baseline scenario missing from
    the candidate is a regression (its test failed before it was timed), found later.
    """
    if not set(baseline.id) & set(candidate.id):
        raise GateError(
            f"the runs share no scenario (baseline: {_few(baseline.id)}; candidate: {_few(candidate.id)}); "
            "run both with the same --optbench-* options"
        )
    failed = baseline[(baseline.status != "converged") & (baseline.expected_failure == "")]
    if len(failed) and not allow_failed:
        raise GateError(
            f"the baseline has failed scenarios ({', '.join(sorted(failed.id))}), so it is no baseline; "
            "save a passing run, or pass --allow-failed-baseline"
        )
    warnings = []
    for column, what in (("torch", "torch versions"), ("machine", "machines")):
        before, after = set(baseline[column]), set(candidate[column])
        if before != after:
            warnings.append(
                f"warning: the runs differ in {what} ({', '.join(sorted(before))} against "
                f"{', '.join(sorted(after))}); differences may come from that"
            )
    return warnings


def _few(ids: pd.Series) -> str:
    names = sorted(set(ids))
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def expected_by_registry(row: Mapping[str, Any], registry: Registry = OPTIMIZERS) -> str | None:
    """Why the gate's registry lets this case fail (``""``: it must converge), or ``None``: unknown.

    The case is known when its optimizer is a registry entry (or one of its implementations, such
    as ``adam.fused``, or the tutorial's seed profile) and its problem is in ``PROBLEMS``;
    optimizers and problems added by plug-ins are not, and the baseline's marks stand for them.
    """
    name, _, impl = str(row["optimizer"]).rpartition(".")
    found = [
        table[candidate]
        for table in (registry, SEED_PROFILE)
        for candidate in (str(row["optimizer"]), name if impl in IMPLS else "")
        if candidate in table
    ]
    problem = PROBLEMS.get(str(row["problem"]))
    if not found or problem is None:
        return None
    said = found[0].expected_failure(int(row["batch_size"]), problem=problem, dtype=str(row["dtype"]))
    return "" if said is None else said[0]


_MISSING = "missing from the candidate (its test failed before it was timed, or did not run)"


def verdicts(
    baseline: pd.DataFrame,
    candidate: pd.DataFrame,
    tolerances: Tolerances,
    *,
    accept_new_expected_failures: bool = False,
    registry: Registry = OPTIMIZERS,
) -> pd.DataFrame:
    """Every scenario that changed, worst first, with ``gated``: whether it fails the gate.

    The gate decides which cases may fail, not the candidate: the registry it runs with where it
    knows the case (``expected_by_registry``), else the baseline's marks. A regression in a case
    that may fail is listed but not gated. A case that is newly an expected failure (marked by the
    candidate or the registry, not by the baseline) is a change that fails the gate unless
    ``accept_new_expected_failures``; a mark of the candidate's alone excuses nothing. A scenario
    new in the candidate is listed but not gated; one missing from it is gated.
    """
    table = compare(baseline, candidate, tolerances)
    removed = (table.regression == "removed").to_numpy()
    one_side = removed | (table.regression == "added").to_numpy()  # no earlier mark to compare with
    # Everything is looked up by the row's own keys: a candidate that keeps an id but changes its
    # batch size or dtype is another case, which the registry may excuse where it does not this one.
    where = pd.MultiIndex.from_frame(table[list(KEYS)])
    before, after = (
        frame.drop_duplicates(list(KEYS)).set_index(list(KEYS)).expected_failure.reindex(where).fillna("")
        for frame in (baseline, candidate)
    )
    known = [expected_by_registry(row, registry) for row in table[list(KEYS)].to_dict("records")]
    may_fail, newly, notes = [], [], []
    for said, base, cand, alone in zip(known, before, after, one_side, strict=True):
        # Not the registry's case: the baseline's mark, or the candidate's once accepted.
        unknown = bool(base) or (accept_new_expected_failures and bool(cand))
        allowed = unknown if said is None else bool(said)
        new = (allowed or bool(cand)) and not base and not alone
        may_fail.append(allowed)
        newly.append(new)
        if new:
            notes.append(f"newly an expected failure ({said or cand})")
        elif cand and not allowed:
            notes.append("the candidate marks it an expected failure, the gate's registry does not")
        else:
            notes.append("")
    table["may_fail"], table["newly_expected"] = may_fail, newly
    regression = (table.regression != "") & (table.regression != "added")
    excused = table.may_fail & (~table.newly_expected | accept_new_expected_failures)
    missing = removed  # a case the baseline ran must run: nothing says how it ended
    table["gated"] = (
        (regression & ~excused) | missing | (table.newly_expected & (not accept_new_expected_failures))
    )
    table["regression"] = [
        "; ".join(part for part in parts if part)
        for parts in zip(
            table.regression.replace({"removed": _MISSING}),
            notes,
            strict=True,
        )
    ]
    scores = [_score(table[f"{m.name}_change"], m.tolerance) for m in _gated(baseline, candidate, tolerances)]
    score = pd.concat(scores, axis=1).max(axis=1) if scores else pd.Series(0.0, index=table.index)
    score = score.where(table.status_change == "", math.inf).fillna(math.inf)
    changed = (table.status_change != "") | (score.abs() > 0) | (table.regression != "")
    table = table.assign(score=score)[changed]
    return table.sort_values(["gated", "score"], ascending=[False, False], kind="stable").reset_index(
        drop=True
    )


def _gated(baseline: pd.DataFrame, candidate: pd.DataFrame, tolerances: Tolerances) -> tuple[Metric, ...]:
    """The metrics the runs' tables gate, with ``tolerances`` applied: the columns of the verdict."""
    return tolerances.gated({"metrics": _metrics(baseline, candidate)})


def _metrics(baseline: pd.DataFrame, candidate: pd.DataFrame) -> tuple[Metric, ...]:
    """Every metric of both runs' tables (``optbench.results.metrics_of``)."""
    return metrics_of(pd.concat([baseline[["metrics"]], candidate[["metrics"]]], ignore_index=True))


def _score(change: pd.Series, tolerance: float) -> pd.Series:
    """How many tolerances a change is, signed (worse is positive); at tolerance 0 any change is infinite."""
    if tolerance > 0:
        return change / tolerance
    # NaN (a metric the scenario's problem lacks) stays NaN: the row's other metrics decide.
    return change.where(
        change.isna() | (change == 0), change.map(lambda value: math.copysign(math.inf, value))
    )


def _print(table: pd.DataFrame, gated: tuple[Metric, ...]) -> None:
    if not len(table):
        print("no scenario changed")
        return
    changes = {
        f"{metric.label} change": table[f"{metric.name}_change"].map("{:+.4g}".format) for metric in gated
    }
    shown = pd.DataFrame(
        {
            "scenario": table.id,
            "status": table.status_change.where(table.status_change != "", table.status_candidate),
            **changes,
            "time ratio": table.time_ratio.map("{:.3g}".format),
            "verdict": [
                ("REGRESSED: " if gated else "not gated (expected failure): " if note and may_fail else "")
                + (note or "ok")
                for gated, note, may_fail in zip(table.gated, table.regression, table.may_fail, strict=True)
            ],
        }
    )
    print(shown.to_string(index=False))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; 0: no regression, 1: a regression, 2: the runs cannot be compared."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument(
        "--baseline", required=True, metavar="RUN", help="a results file or save number (0003)"
    )
    parser.add_argument("--candidate", required=True, metavar="RUN", help="a results file or save number")
    add_storage_option(parser.add_argument)
    parser.add_argument(
        "--max-growth",
        type=_growth,
        action="append",
        default=[],
        metavar="METRIC=X",
        help="largest allowed growth of a metric over the baseline (repeatable; all=X sets every "
        "metric's; 0 allows none). Default: the tolerance each problem's metric table gives "
        f"(the {PROBLEMS.default.name}: {_defaults(PROBLEMS.default)})",
    )
    parser.add_argument(
        "--max-time-ratio",
        type=_positive,
        default=None,
        metavar="R",
        help="also fail a median time above R times the baseline's (off: only same-machine timings compare)",
    )
    parser.add_argument(
        "--allow-failed-baseline", action="store_true", help="accept a baseline with failed scenarios"
    )
    parser.add_argument(
        "--accept-new-expected-failures",
        action="store_true",
        help="accept cases that became expected failures since the baseline (by default each fails "
        "the gate: marking a case xfail must not hide its regression)",
    )
    args = parser.parse_args(argv)
    tolerances = Tolerances(growth=dict(args.max_growth), time_ratio=args.max_time_ratio)
    try:
        baseline = _load(args.baseline, args.benchmarks_dir, "baseline")
        candidate = _load(args.candidate, args.benchmarks_dir, "candidate")
        _check_metrics(tolerances, _metrics(baseline, candidate))
        for warning in _check_comparable(baseline, candidate, args.allow_failed_baseline):
            print(f"{PROG}: {warning}", file=sys.stderr)
    except (ResultsError, GateError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    table = verdicts(
        baseline, candidate, tolerances, accept_new_expected_failures=args.accept_new_expected_failures
    )
    _print(table, _gated(baseline, candidate, tolerances))
    regressed = int(table.gated.sum())
    print(f"{PROG}: {regressed} regression(s) in {candidate.id.nunique()} scenario(s)", file=sys.stderr)
    return 1 if regressed else 0


if __name__ == "__main__":
    raise SystemExit(main())
