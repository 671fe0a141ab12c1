"""The report's tables: one row per scenario, and baseline-against-candidate deltas.

Their metric columns come from the rows' own metric tables (``optbench.results.metrics_of``).
"""

from __future__ import annotations

import html
from dataclasses import replace

import pandas as pd

from optbench.problems import Metric
from optbench.record import bounded, quantile_field
from optbench.record.checks import DEFAULT_TOLERANCES, Tolerances, regressions
from optbench.results import metrics_of

REPORT_TOLERANCES = replace(DEFAULT_TOLERANCES, time_ratio=1.25)
"""What the report marks as a regression: the gate's defaults, and 1.25x the median time."""

KEYS = ("id", "problem", "optimizer", "batch_size", "device", "dtype")
"""What names a scenario in the tables."""


def metric_columns(metrics: tuple[Metric, ...]) -> list[str]:
    """The summary's metric columns, from the rows' metric tables.

    The median and 0.95 quantile over seeds of each bounded metric, then the first seed's value
    of every metric but the reference's loss.
    """
    spread = [quantile_field(metric.name, q) for metric in bounded(metrics) for q in (0.5, 0.95)]
    return spread + [metric.name for metric in metrics if metric.name != "reference_loss"]


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scenario (and run): median time, time per step, the metrics, status, and the bounds check.

    ``run`` is the save number of an autosaved run, else the file's name.
    ``pass_rate`` is the share of seeds that converged, ``<metric>_q50`` and
    ``_q95`` quantiles over seeds; the plain metric columns are the first seed's;
    ``status`` and ``passed`` judge all seeds. ``us_per_step`` divides the median
    by one seed's steps, so it is the cost of a step of all seeds.
    """
    table = frame.assign(
        run=frame["save"].where(frame["save"] != "", frame["run"]),
        median_s=frame["median"],
        us_per_step=frame["median"] / frame["steps"].where(frame["steps"] > 0) * 1e6,
    )
    table = table.sort_values(["problem", "batch_size", "device", "optimizer", "date"], kind="stable")
    columns = [*KEYS, "run", "median_s", "us_per_step", "seeds", "pass_rate"]
    columns += [*metric_columns(metrics_of(frame)), "status", "passed"]
    return table[columns].reset_index(drop=True)


def compare(
    baseline: pd.DataFrame, candidate: pd.DataFrame, tolerances: Tolerances = REPORT_TOLERANCES
) -> pd.DataFrame:
    """Scenarios of both runs side by side, with deltas and a ``regression`` column.

    ``<metric>_change`` is the candidate's first seed minus the baseline's, for each
    metric the gate compares; ``regression`` lists what ``optbench.record.checks.regressions``
    finds against ``tolerances``; a scenario in only one run says ``added`` or ``removed``.
    """
    keys = list(KEYS)
    metrics = metrics_of(pd.concat([baseline[["metrics"]], candidate[["metrics"]]], ignore_index=True))
    values = ["median", "status", "passed", "seeds", "pass_rate", "metrics"]
    values += [metric.name for metric in metrics]
    values += [quantile_field(metric.name, 0.95) for metric in bounded(metrics)]
    # A metric one run has and the other lacks (a problem added since) is NaN on the other side.
    before, after = (frame.reindex(columns=keys + values) for frame in (baseline, candidate))
    merged = before.merge(after, on=keys, how="outer", suffixes=("_baseline", "_candidate"), indicator=True)
    merged["time_ratio"] = merged["median_candidate"] / merged["median_baseline"]
    for metric in tolerances.gated({"metrics": metrics}):
        merged[f"{metric.name}_change"] = (
            merged[f"{metric.name}_candidate"] - merged[f"{metric.name}_baseline"]
        )
    merged["status_change"] = [
        "" if before == after else f"{before} -> {after}"
        for before, after in zip(merged.status_baseline, merged.status_candidate, strict=True)
    ]
    merged["regression"] = [_regression(row, values, tolerances) for row in merged.to_dict("records")]
    merged = merged.drop(columns=["_merge", "metrics_baseline", "metrics_candidate"])
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


def markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency).

    Every header and cell is HTML-escaped, as in ``index.html``: Markdown renderers pass raw HTML
    through, so a scenario id or run name such as ``<script>`` must come out as text. ``|`` is
    escaped too, so that no cell splits in two.
    """

    def cell(value: object) -> str:
        return html.escape(text(value, digits), quote=False).replace("|", "\\|")

    header = "| " + " | ".join(cell(str(column)) for column in table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"
