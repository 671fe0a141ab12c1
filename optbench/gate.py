"""``python -m optbench.gate``: fail CI when a candidate run converges worse than a baseline run.

Exit 1 when any scenario got worse (its status, or a metric that its problem gates
growing beyond its tolerance, and with ``--max-time-ratio`` its median time);
exit 0 otherwise; exit 2 when the runs cannot be compared.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from optbench.options import add_storage_option
from optbench.problems import PROBLEMS, Metric, Problem
from optbench.record.checks import Tolerances
from optbench.results import ResultsError, find_run, load, metrics_of
from optbench.results.tables import compare

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


def verdicts(baseline: pd.DataFrame, candidate: pd.DataFrame, tolerances: Tolerances) -> pd.DataFrame:
    """Every scenario that changed, worst first, with ``gated``: whether it fails the gate.

    A regression in a scenario the candidate expects to fail (an xfail case) is
    listed but not gated; so is a scenario new in the candidate. A baseline
    scenario missing from the candidate is gated.
    """
    table = compare(baseline, candidate, tolerances)
    expected = candidate.set_index("id").expected_failure.reindex(table.id).fillna("").to_numpy()
    table["gated"] = (table.regression != "") & (table.regression != "added") & (expected == "")
    table["regression"] = table.regression.replace(
        {"removed": "missing from the candidate (its test failed before it was timed, or did not run)"}
    )
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
                ("REGRESSED: " if gated else "not gated (expected failure): " if note else "")
                + (note or "ok")
                for gated, note in zip(table.gated, table.regression, strict=True)
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
    table = verdicts(baseline, candidate, tolerances)
    _print(table, _gated(baseline, candidate, tolerances))
    regressed = int(table.gated.sum())
    print(f"{PROG}: {regressed} regression(s) in {candidate.id.nunique()} scenario(s)", file=sys.stderr)
    return 1 if regressed else 0


if __name__ == "__main__":
    raise SystemExit(main())
