"""The report's tables: one row per scenario, and baseline-against-candidate deltas.

Their metric columns come from the rows' own metric tables (``optbench.results.metrics_of``).
"""

from __future__ import annotations

import html
from dataclasses import replace

import pandas as pd

from optbench.plots import profiles
from optbench.problems import Metric
from optbench.record import bounded, quantile_field
from optbench.record.checks import DEFAULT_TOLERANCES, Tolerances, regressions
from optbench.results import metrics_of

REPORT_TOLERANCES = replace(DEFAULT_TOLERANCES, time_ratio=1.25)
"""What the report marks as a regression: the gate's defaults, and 1.25x the median time."""

KEYS = ("id", "problem", "optimizer", "batch_size", "device", "dtype", "schedule")
"""What names a scenario in the tables."""


def metric_columns(metrics: tuple[Metric, ...]) -> list[str]:
    """The summary's metric columns, from the rows' metric tables.

    The median and 0.95 quantile over seeds of each bounded metric, then the first seed's value
    of every metric but the reference's loss.
    """
    spread = [quantile_field(metric.name, q) for metric in bounded(metrics) for q in (0.5, 0.95)]
    return spread + [metric.name for metric in metrics if metric.name != "reference_loss"]


TIME_COLUMNS = {
    "seed_runs": "how the seeds ran: one (a single seed), vectorised (all seeds as replicas of one run, "
    "stepping together) or sequential (one run after another)",
    "ms_per_step": "milliseconds per optimizer step of one run: the one seed's, each of the seeds' run one "
    "after another, or the vectorised run's, whose step moves all its seeds at once; the same whatever the "
    "epochs or the seeds run one after another",
    "s_all_seeds": "seconds to train every seed of the case once (pytest-benchmark's median round)",
    "s_per_seed": "s_all_seeds / seeds: what one seed cost; a vectorised case shares its run among its seeds",
}
"""The timing columns of the tables and what each means; the report prints it under the table."""


def timings(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``TIME_COLUMNS`` of each row, from its median round, first seed's steps, seeds and seed_runs.

    A vectorised run steps all its seeds at once, so its step is the run's; one seed, or seeds run one
    after another, take ``seeds x steps`` steps in a round. ``steps`` is the first seed's: where a seed
    stopped early (diverged), the others' steps are taken to be as many. NaN where nothing was timed.
    """
    seeds = frame["seeds"].where(frame["seeds"] > 0)
    steps = frame["steps"].where(frame["steps"] > 0)
    runs_steps = steps.where(frame["seed_runs"] == "vectorised", steps * seeds)
    return pd.DataFrame(
        {
            "seed_runs": frame["seed_runs"],
            "ms_per_step": frame["median"] / runs_steps * 1e3,
            "s_all_seeds": frame["median"],
            "s_per_seed": frame["median"] / seeds,
        },
        index=frame.index,
    )


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scenario (and run): seeds, how they ran, times, metrics, status and the bounds check.

    ``run`` is the save number of an autosaved run, else the file's name.
    ``pass_rate`` is the share of seeds that converged, ``<metric>_q50`` and
    ``_q95`` quantiles over seeds; the plain metric columns are the first seed's;
    ``status`` and ``passed`` judge all seeds; ``expected_failure`` is the reason the case may fail
    (its xfail mark), or empty. The times are ``TIME_COLUMNS`` (``timings``).
    """
    table = frame.assign(**timings(frame), run=frame["save"].where(frame["save"] != "", frame["run"]))
    table = table.sort_values(["problem", "batch_size", "device", "optimizer", "date"], kind="stable")
    columns = [*KEYS, "run", "seeds", *TIME_COLUMNS, "pass_rate"]
    columns += [*metric_columns(metrics_of(frame)), "status", "passed", "expected_failure"]
    return table[columns].reset_index(drop=True)


def compare(
    baseline: pd.DataFrame, candidate: pd.DataFrame, tolerances: Tolerances = REPORT_TOLERANCES
) -> pd.DataFrame:
    """Scenarios of both runs side by side, with deltas and a ``regression`` column.

    Each side has the summary's ``TIME_COLUMNS``. ``time_ratio`` is the candidate's ``s_all_seeds``
    over the baseline's: the median round that ``regressions`` checks against ``tolerances.time_ratio``
    (a case that now runs its seeds otherwise, or runs other seeds, shows in ``seed_runs`` and
    ``seeds`` beside it). ``<metric>_change`` is the candidate's first seed minus the baseline's, for each
    metric the gate compares; ``regression`` lists what ``optbench.record.checks.regressions``
    finds against ``tolerances``; a scenario in only one run says ``added`` or ``removed``.
    What changed comes first after the scenario's keys, then the baseline's columns, then the candidate's.
    """
    keys = list(KEYS)
    metrics = metrics_of(pd.concat([baseline[["metrics"]], candidate[["metrics"]]], ignore_index=True))
    values = ["median", "status", "passed", "seeds", "pass_rate", "metrics"]
    values += [metric.name for metric in metrics]
    values += [quantile_field(metric.name, 0.95) for metric in bounded(metrics)]
    # A metric one run has and the other lacks (a problem added since) is NaN on the other side.
    before, after = (
        frame.reindex(columns=keys + values).assign(**timings(frame)) for frame in (baseline, candidate)
    )
    merged = before.merge(after, on=keys, how="outer", suffixes=("_baseline", "_candidate"), indicator=True)
    merged["time_ratio"] = merged["s_all_seeds_candidate"] / merged["s_all_seeds_baseline"]
    for metric in tolerances.gated({"metrics": metrics}):
        merged[f"{metric.name}_change"] = (
            merged[f"{metric.name}_candidate"] - merged[f"{metric.name}_baseline"]
        )
    merged["status_change"] = [
        "" if before == after else f"{before} -> {after}"
        for before, after in zip(merged.status_baseline, merged.status_candidate, strict=True)
    ]
    merged["regression"] = [_regression(row, values, tolerances) for row in merged.to_dict("records")]
    # What changed first, then each run's columns in the summary's order; the median round is each
    # side's s_all_seeds, under the name that says what it is.
    changes = ["regression", "status_change", "time_ratio", *(c for c in merged if c.endswith("_change"))]
    shown = ["status", "passed", "seeds", *TIME_COLUMNS, "pass_rate"]
    shown += [name for name in values if name not in (*shown, "median", "metrics")]
    sides = [f"{name}_{side}" for side in ("baseline", "candidate") for name in shown]
    merged = merged[[*keys, *dict.fromkeys(changes), *sides]]
    return merged.sort_values(["problem", "batch_size", "device", "optimizer"], kind="stable").reset_index(
        drop=True
    )


def _regression(row: dict, values: list[str], tolerances: Tolerances) -> str:
    if row["_merge"] != "both":
        return "removed" if row["_merge"] == "left_only" else "added"
    before, after = ({name: row[f"{name}_{side}"] for name in values} for side in ("baseline", "candidate"))
    return "; ".join(regressions(before, after, tolerances))


def text(value: object, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` significant digits, NaN as empty."""
    if isinstance(value, float):
        return "" if value != value else f"{value:.{digits}g}"
    return str(value)


def is_number(column: pd.Series) -> bool:
    """Whether a column holds numbers (bools are not): its cells need no escaping, and align right."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def texts(column: pd.Series, digits: int = 4) -> list[str]:
    """A column's cells as ``text`` writes each, formatted by the column's type at once.

    A report of 20,000 rows has half a million cells: asking each what it is costs seconds.
    """
    values = column.tolist()
    if pd.api.types.is_float_dtype(column):
        return ["" if value != value else f"{value:.{digits}g}" for value in values]
    if pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column):
        return [str(value) for value in values]
    return [text(value, digits) for value in values]


def markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency).

    Every header and cell is HTML-escaped, as in ``index.html``: Markdown renderers pass raw HTML
    through, so a scenario id or run name such as ``<script>`` must come out as text. ``|`` is
    escaped too, so that no cell splits in two. A column of numbers has nothing to escape.
    """

    def escape(value: str) -> str:
        return html.escape(value, quote=False).replace("|", "\\|")

    header = "| " + " | ".join(escape(str(column)) for column in table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    columns = []
    for name in table.columns:
        cells = texts(table[name], digits)
        columns.append(cells if is_number(table[name]) else [escape(cell) for cell in cells])
    rows = ["| " + " | ".join(row) + " |" for row in zip(*columns, strict=True)]
    return "\n".join([header, rule, *rows]) + "\n"


OPTIMIZER_COLUMNS = {
    "optimizer": "the optimizer set-up",
    "cases": "the (problem, batch size, device, dtype, schedule) cases it ran",
    "passed": "of those, the cases that passed their bounds",
    "mean_pass_rate": "its pass rate over seeds, averaged over its cases",
    "profile_score_seconds": "the area under its performance profile in seconds to target (profiles.png): "
    "1 is the fastest on every case, 0 never within 10 times the fastest",
    "profile_score_steps": "the same in optimizer steps to target, which no machine changes",
}
"""The optimizers' table: its columns and what each holds, in order."""


def optimizers(matrix: pd.DataFrame, times: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer: its cases, how many passed, its mean pass rate and its profile scores.

    Args:
        matrix: the newest row of each matrix scenario (``optbench.plots.data.newest``, the seed
            profile split off).
        times: ``optbench.plots.data.times_to_target(matrix)``.

    Returns:
        The columns of ``OPTIMIZER_COLUMNS``, best seconds score first (ties by name); a score is NaN
        where the records hold no time to target (saved before it).
    """
    grouped = matrix.groupby("optimizer", sort=True)
    table = pd.DataFrame(
        {
            "cases": grouped.size(),
            "passed": grouped["passed"].sum().astype(int),
            "mean_pass_rate": grouped["pass_rate"].mean(),
        }
    )
    table.index.name = "optimizer"
    for measure in profiles.MEASURES:
        table[f"profile_score_{measure}"] = float("nan")
    if len(times) and times.seconds.notna().any():
        scores = profiles.profile_scores(profiles.performance_profiles(times))
        wide = scores.pivot(index="optimizer", columns="measure", values="score")
        for measure in wide.columns:
            table[f"profile_score_{measure}"] = wide[measure].reindex(table.index)
    table = table.reset_index()[list(OPTIMIZER_COLUMNS)]
    ordered = table.sort_values(
        ["profile_score_seconds", "optimizer"], ascending=[False, True], na_position="last"
    )
    return ordered.reset_index(drop=True)
