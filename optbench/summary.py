"""The report's tables: one row per scenario, and baseline-against-candidate deltas."""

from __future__ import annotations

import pandas as pd

SUMMARY_COLUMNS = (
    "id", "optimizer", "batch_size", "device", "run", "median_s", "us_per_step", "final_mse",
    "excess_mse", "slope", "intercept", "status", "passed",
)  # fmt: skip

SLOWER = 1.25
"""A candidate whose median time is this many times the baseline's is marked slower."""

WORSE_FIT = 0.05
"""A candidate whose excess MSE grew by more than this is marked as a worse fit."""

_RANK = {"converged": 0, "not_converged": 1, "diverged": 2}


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scenario (and run): median time, time per step, fit, status, and the threshold check.

    ``run`` is the save number of an autosaved run, else the file's name.
    """
    table = frame.assign(
        run=frame["save"].where(frame["save"] != "", frame["run"]),
        median_s=frame["median"],
        us_per_step=frame["median"] / frame["steps"].where(frame["steps"] > 0) * 1e6,
    )
    table = table.sort_values(["batch_size", "device", "optimizer", "date"], kind="stable")
    return table[list(SUMMARY_COLUMNS)].reset_index(drop=True)


def compare(baseline: pd.DataFrame, candidate: pd.DataFrame) -> pd.DataFrame:
    """Scenarios of both runs side by side, with deltas and a ``regression`` column.

    A regression is a status that got worse (converged -> not converged -> diverged),
    a fit whose excess MSE grew by more than ``WORSE_FIT``, or a median time at
    least ``SLOWER`` times the baseline's. Scenarios in only one run are kept,
    with ``added`` or ``removed`` as their regression note.
    """
    keys = ["id", "optimizer", "batch_size", "device"]
    values = ["median", "excess_mse", "final_mse", "slope", "intercept", "status", "passed"]
    merged = baseline[keys + values].merge(
        candidate[keys + values], on=keys, how="outer", suffixes=("_baseline", "_candidate"), indicator=True
    )
    merged["time_ratio"] = merged["median_candidate"] / merged["median_baseline"]
    merged["excess_mse_change"] = merged["excess_mse_candidate"] - merged["excess_mse_baseline"]
    merged["status_change"] = [
        "" if before == after else f"{before} -> {after}"
        for before, after in zip(merged.status_baseline, merged.status_candidate, strict=True)
    ]
    merged["regression"] = merged.apply(_regression, axis=1) if len(merged) else ""
    merged = merged.drop(columns="_merge")
    return merged.sort_values(["batch_size", "device", "optimizer"], kind="stable").reset_index(drop=True)


def _regression(row: pd.Series) -> str:
    if row["_merge"] != "both":
        return "removed" if row["_merge"] == "left_only" else "added"
    notes = []
    if _RANK.get(row["status_candidate"], 2) > _RANK.get(row["status_baseline"], 2):
        notes.append("status worse")
    if row["excess_mse_change"] > WORSE_FIT:
        notes.append("worse fit")
    if row["time_ratio"] >= SLOWER:
        notes.append("slower")
    return ", ".join(notes)


def markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if value != value else f"{value:.{digits}g}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"
