"""The report's tables: one row per scenario, and baseline-against-candidate deltas."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from optbench.checks import DEFAULT_TOLERANCES, Tolerances, regressions

SUMMARY_COLUMNS = (
    "id", "optimizer", "batch_size", "device", "run", "median_s", "us_per_step", "seeds", "pass_rate",
    "excess_mse_q50", "excess_mse_q95", "final_mse", "excess_mse", "slope", "intercept", "status", "passed",
)  # fmt: skip

REPORT_TOLERANCES = replace(DEFAULT_TOLERANCES, time_ratio=1.25)
"""What the report marks as a regression: the gate's defaults, and 1.25x the median time."""

_RECORD = (
    "status", "excess_mse", "slope", "intercept", "median", "target_slope", "target_intercept", "seeds",
    "excess_mse_q95",
)  # fmt: skip


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scenario (and run): median time, time per step, fit, status, and the threshold check.

    ``run`` is the save number of an autosaved run, else the file's name.
    ``pass_rate`` is the share of seeds that converged, ``excess_mse_q50`` and
    ``_q95`` quantiles over seeds; ``final_mse`` to ``intercept`` are the first
    seed's; ``status`` and ``passed`` judge all seeds. ``us_per_step`` divides
    the median by one seed's steps, so it is the cost of a step of all seeds.
    """
    table = frame.assign(
        run=frame["save"].where(frame["save"] != "", frame["run"]),
        median_s=frame["median"],
        us_per_step=frame["median"] / frame["steps"].where(frame["steps"] > 0) * 1e6,
    )
    table = table.sort_values(["batch_size", "device", "optimizer", "date"], kind="stable")
    return table[list(SUMMARY_COLUMNS)].reset_index(drop=True)


def compare(
    baseline: pd.DataFrame, candidate: pd.DataFrame, tolerances: Tolerances = REPORT_TOLERANCES
) -> pd.DataFrame:
    """Scenarios of both runs side by side, with deltas and a ``regression`` column.

    ``regression`` lists what ``optbench.checks.regressions`` finds against
    ``tolerances``; a scenario in only one run says ``added`` or ``removed``.
    """
    keys = ["id", "optimizer", "batch_size", "device"]
    values = ["median", "excess_mse", "final_mse", "optimum_mse", "slope", "intercept", "status", "passed"]
    values += ["seeds", "pass_rate", "excess_mse_q95"]
    values += ["target_slope", "target_intercept"]
    merged = baseline[keys + values].merge(
        candidate[keys + values], on=keys, how="outer", suffixes=("_baseline", "_candidate"), indicator=True
    )
    merged["time_ratio"] = merged["median_candidate"] / merged["median_baseline"]
    merged["excess_mse_change"] = merged["excess_mse_candidate"] - merged["excess_mse_baseline"]
    merged["slope_change"] = merged["slope_candidate"] - merged["slope_baseline"]
    merged["intercept_change"] = merged["intercept_candidate"] - merged["intercept_baseline"]
    merged["status_change"] = [
        "" if before == after else f"{before} -> {after}"
        for before, after in zip(merged.status_baseline, merged.status_candidate, strict=True)
    ]
    merged["regression"] = [_regression(row, tolerances) for row in merged.to_dict("records")]
    merged = merged.drop(columns="_merge")
    return merged.sort_values(["batch_size", "device", "optimizer"], kind="stable").reset_index(drop=True)


def _regression(row: dict, tolerances: Tolerances) -> str:
    if row["_merge"] != "both":
        return "removed" if row["_merge"] == "left_only" else "added"
    before, after = ({name: row[f"{name}_{side}"] for name in _RECORD} for side in ("baseline", "candidate"))
    return "; ".join(regressions(before, after, tolerances))


def text(value: object, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` significant digits, NaN as empty."""
    if isinstance(value, float):
        return "" if value != value else f"{value:.{digits}g}"
    return str(value)


def markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""

    def cell(value: object) -> str:
        return text(value, digits).replace("|", "\\|")

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"
