"""What the report draws, computed from the results DataFrame and kept apart from drawing."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from optbench.optimizers.registry import SEED_PROFILE
from optbench.problems import PROBLEMS

if TYPE_CHECKING:
    from optbench.tune.settings import TunedFile


def split_seed_profile(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(matrix rows, seed-profile rows)``: the tutorial's own scenarios get a figure of their own."""
    seed = frame.optimizer.isin(list(SEED_PROFILE))
    return frame[~seed], frame[seed]


def newest(frame: pd.DataFrame) -> pd.DataFrame:
    """Each scenario's row from the newest run that holds it."""
    ordered = frame.sort_values(["date", "run"], na_position="first", kind="stable")
    return ordered.drop_duplicates("id", keep="last").sort_values(
        ["problem", "batch_size", "device", "optimizer"]
    )


PANEL = ["problem", "batch_size", "device"]
"""What one panel of the loss curves shows: one problem at one batch size on one device."""


def panels(frame: pd.DataFrame) -> list[tuple[str, int, str]]:
    """``(problem, batch size, device)`` per panel: one per problem and batch size, and per device."""
    return sorted(
        {
            (str(p), int(bs), str(d))
            for p, bs, d in zip(frame.problem, frame.batch_size, frame.device, strict=True)
        }
    )


OUTCOMES = ("passed", "failed", "expected failure")
"""A scenario's outcome as the figures mark it: ``failed`` is a status other than converged without an
expected failure (xfail mark), ``expected failure`` the same with one; a converged case passed, marked or
not."""


def expected_failures(frame: pd.DataFrame) -> pd.Series:
    """Whether each row's case carries an expected failure (an xfail mark); ``False`` without the column."""
    if "expected_failure" not in frame:
        return pd.Series(False, index=frame.index, name="xfail")
    return (frame["expected_failure"].fillna("").astype(str) != "").rename("xfail")


def outcomes(frame: pd.DataFrame) -> pd.Series:
    """Each row's outcome (``OUTCOMES``); rows without a ``status`` column passed."""
    status = frame["status"] if "status" in frame else pd.Series("converged", index=frame.index)
    failed = np.where(expected_failures(frame), "expected failure", "failed")
    return pd.Series(np.where(status == "converged", "passed", failed), index=frame.index, name="outcome")


def loss_curves(frame: pd.DataFrame, label: str = "") -> pd.DataFrame:
    """One row per point of each scenario's per-epoch full-data loss: the median over seeds and its band.

    Args:
        frame: rows from ``optbench.results.load``, one per scenario.
        label: which run the rows come from (``baseline``/``candidate`` in a comparison).

    Returns:
        Columns ``problem, batch_size, device, optimizer, id, label, seeds, outcome, epoch, loss,
        low, high``: ``loss`` is the median over seeds (the one seed's loss for a
        one-seed scenario), ``low`` and ``high`` the 10% and 90% quantiles; ``outcome`` is the
        scenario's (``outcomes``). Epochs count from 0 (before training), so every batch size
        shares the x axis; a point where the median is not finite (diverged) is left out, and
        a band edge that is not finite is NaN.
    """
    keys = [*PANEL, "optimizer", "id", "seeds"]
    bands = {"loss": "epoch_loss_q50", "low": "epoch_loss_q10", "high": "epoch_loss_q90"}
    points = frame[keys + list(bands.values())].rename(columns={v: k for k, v in bands.items()})
    points["outcome"] = outcomes(frame)
    points = points.explode(list(bands))
    points["epoch"] = points.groupby(level=0).cumcount()
    for column in bands:
        values = points[column].astype(float)
        points[column] = values.where(values < float("inf"))
    points = points[points["loss"].notna()]
    points["label"] = label
    columns = [*PANEL, "optimizer", "id", "label", "seeds", "outcome", "epoch", "loss", "low", "high"]
    return points[columns].reset_index(drop=True)


def floors(frame: pd.DataFrame) -> pd.DataFrame:
    """The reference solution's loss per panel (the lowest over seeds): the loss no optimizer goes under."""
    grouped = frame.groupby(PANEL, as_index=False)["reference_loss"].min()
    return grouped.rename(columns={"reference_loss": "loss"})


def seed_curves(seed: pd.DataFrame) -> pd.DataFrame:
    """The seed profile's rows as per-step loss points (steps, not windows, on the x axis)."""
    rows = []
    for record in seed.itertuples():
        stride = max(int(record.step_loss_stride), 1)
        for index, loss in enumerate(record.step_loss):
            rows.append({"optimizer": record.optimizer, "step": (index + 1) * stride, "loss": loss})
    return pd.DataFrame(rows, columns=["optimizer", "step", "loss"])


SENSITIVITY = [
    "panel",
    "problem",
    "batch_size",
    "dtype",
    "optimizer",
    "lr",
    "pass_rate",
    "excess_q95",
    "chosen",
]
"""The columns of ``sensitivity_curves``."""


def sensitivity_panel(problem: str, batch_size: int, dtype: str) -> str:
    """A sensitivity panel's name: ``line, batch size 10``, with the dtype where not float32.

    A registered problem without data has no batch size: ``rosenbrock, full batch``.
    """
    full = problem in PROBLEMS and PROBLEMS[problem].data is None
    size = "full batch" if full else f"batch size {batch_size}"
    return f"{problem}, {size}" + ("" if dtype == "float32" else f", {dtype}")


def run_cases(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """The ``(optimizer, problem)`` pairs that rows from ``optbench.results.load`` hold."""
    pairs = frame[["optimizer", "problem"]].drop_duplicates()
    return set(zip(pairs.optimizer.astype(str), pairs.problem.astype(str), strict=True))


def sensitivity_curves(tuned: TunedFile, pairs: Iterable[tuple[str, str]] | None = None) -> pd.DataFrame:
    """One row per point of each tuned case's sweep: its pass rate and 0.95-quantile excess loss per lr.

    Args:
        tuned: a tuned-settings file (``optbench.tune.settings.read``).
        pairs: the ``(optimizer, problem)`` pairs to keep (a report keeps its runs' ``run_cases``);
            ``None`` keeps every case.

    Returns:
        Columns ``SENSITIVITY``, a row per case and learning rate: ``panel`` names the case's
        problem, batch size and dtype (``sensitivity_panel``); ``excess_q95`` is NaN where the file
        holds ``null`` (the quantile is infinite: seeds diverged); ``chosen`` is true at the case's
        chosen lr alone. Rows are in panel order (problem, batch size, float32 before the other
        dtypes), then by optimizer and lr; no case kept gives no rows.
    """
    keep = None if pairs is None else set(pairs)
    cases = [case for case in tuned.cases if keep is None or (case.optimizer, case.problem) in keep]
    cases.sort(key=lambda c: (c.problem, c.batch_size, c.dtype != "float32", c.dtype, c.optimizer))
    rows = [
        (
            sensitivity_panel(case.problem, case.batch_size, case.dtype),
            case.problem,
            case.batch_size,
            case.dtype,
            case.optimizer,
            point.lr,
            point.pass_rate,
            math.nan if point.excess_q95 is None else point.excess_q95,
            point.lr == case.lr,
        )
        for case in cases
        for point in sorted(case.points, key=lambda p: p.lr)
    ]
    curves = pd.DataFrame(rows, columns=SENSITIVITY)
    types = {"batch_size": "int64", "lr": "float64", "pass_rate": "float64", "excess_q95": "float64"}
    return curves.astype({**types, "chosen": "bool"})


CASE = ["problem", "batch_size", "device", "dtype", "schedule"]
"""What one case of the heatmaps and performance profiles is: a column of the heatmaps."""

CELLS = ["optimizer", *CASE, "column", "seeds", "status", "xfail", "outcome"]
"""The columns that ``pass_rates`` and ``times_to_target`` share: which cell a row is, whether its case
carries an expected failure (``expected_failures``), and how it ended (``outcomes``)."""


def full_batch(ids: pd.Series) -> pd.Series:
    """Whether each scenario id is of a problem without data, which has no batch size (``adam-full-cpu-...``).

    The id is what says so (``Scenario.id``): its second part, as optimizer names hold no ``-``.
    """
    return ids.astype(str).str.split("-", n=2).str[1] == "full"


def case_columns(frame: pd.DataFrame) -> pd.Series:
    """Each row's heatmap column: ``line bs10``, then device, dtype and schedule where rows differ.

    A problem without data has no batch size: its column says ``full`` (``rosenbrock full``).
    """
    size = (" bs" + frame.batch_size.astype(str)).where(~full_batch(frame.id), " full")
    label = frame.problem.astype(str) + size
    for column in ("device", "dtype", "schedule"):
        if frame[column].nunique() > 1:
            label = label + " " + frame[column].astype(str)
    return label.rename("column")


def _cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The cells' shared columns (``CELLS``), rows in column order (``CASE``), then by optimizer."""
    cells = frame.assign(column=case_columns(frame), xfail=expected_failures(frame), outcome=outcomes(frame))
    return cells.sort_values([*CASE, "optimizer"], kind="stable")


def pass_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """The pass-rate heatmap's cells: one per scenario, its share of seeds that converged.

    Args:
        frame: one row per scenario (``newest`` rows of the matrix, ``split_seed_profile``).

    Returns:
        Columns ``CELLS`` and ``pass_rate``, rows sorted by ``CASE`` then optimizer. A case an
        optimizer did not run has no row (the figure leaves its cell grey).
    """
    cells = _cells(frame)
    return cells[[*CELLS, "pass_rate"]].reset_index(drop=True)


def _median_over_seeds(frame: pd.DataFrame, values: str) -> pd.Series:
    """The nearest-rank median over each row's seeds of ``values`` (a per-seed list), NaN when infinite.

    A seed that did not converge (``seed_status``), or whose value is missing, counts as infinitely
    late, as ``target_step_q50`` counts a seed that never got there: the median is finite when at
    least half the seeds converged. A row whose list does not hold one value per seed (a record
    saved before time to target) gets NaN.
    """
    lists, status = frame[values], frame["seed_status"]
    lengths = lists.map(lambda v: len(v) if isinstance(v, list) else -1)
    usable = (lengths > 0) & (lengths == status.map(lambda v: len(v) if isinstance(v, list) else -2))
    if not usable.any():
        return pd.Series(np.nan, index=frame.index, dtype=float)
    long = pd.DataFrame({values: lists[usable], "status": status[usable]}).explode([values, "status"])
    value = pd.to_numeric(long[values], errors="coerce").astype(float)
    value = value.where((long.status == "converged") & value.notna(), math.inf)
    ordered = pd.DataFrame({"row": long.index, "value": value.to_numpy()})
    ordered = ordered.sort_values(["row", "value"], kind="stable")
    rank = ordered.groupby("row").cumcount() + 1
    size = ordered.groupby("row")["value"].transform("size")
    median = ordered[rank == np.ceil(size / 2)].set_index("row")["value"]
    return median.where(np.isfinite(median)).reindex(frame.index)


def times_to_target(frame: pd.DataFrame) -> pd.DataFrame:
    """The time-to-target heatmap's cells, and the performance profiles' times: one per scenario.

    ``seconds`` is the nearest-rank median over seeds of ``seed_target_seconds``: the training
    seconds of the run that trained the seed until its loss first came within the excess-loss bound.
    A vectorised run trains all its seeds at once, and each of them is timed by that run (with
    models this small the batch costs about what one seed alone would; the time is never less than
    one seed's); a sequential seed, or a lone one, by its own run. ``steps`` is the same median of
    ``seed_target_step``, optimizer steps, which no machine changes. A seed that did not converge
    counts as never reaching the target, so both are NaN (never reached) unless at least half the
    seeds converged: a case that did not converge on most seeds is unsolved.

    Args:
        frame: one row per scenario (``newest`` rows of the matrix, ``split_seed_profile``).

    Returns:
        Columns ``CELLS``, ``seconds`` and ``steps``, rows sorted by ``CASE`` then optimizer.
    """
    cells = _cells(frame)
    cells["seconds"] = _median_over_seeds(cells, "seed_target_seconds")
    cells["steps"] = _median_over_seeds(cells, "seed_target_step")
    return cells[[*CELLS, "seconds", "steps"]].reset_index(drop=True)
