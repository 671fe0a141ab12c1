"""What the report draws, computed from the results DataFrame and kept apart from drawing."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from optbench.optimizers.registry import SEED_PROFILE

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


def loss_curves(frame: pd.DataFrame, label: str = "") -> pd.DataFrame:
    """One row per point of each scenario's per-epoch full-data loss: the median over seeds and its band.

    Args:
        frame: rows from ``optbench.results.load``, one per scenario.
        label: which run the rows come from (``baseline``/``candidate`` in a comparison).

    Returns:
        Columns ``problem, batch_size, device, optimizer, id, label, seeds, epoch, loss,
        low, high``: ``loss`` is the median over seeds (the one seed's loss for a
        one-seed scenario), ``low`` and ``high`` the 10% and 90% quantiles.
        Epochs count from 0 (before training), so every batch size shares the x
        axis; a point where the median is not finite (diverged) is left out, and
        a band edge that is not finite is NaN.
    """
    keys = [*PANEL, "optimizer", "id", "seeds"]
    bands = {"loss": "epoch_loss_q50", "low": "epoch_loss_q10", "high": "epoch_loss_q90"}
    points = frame[keys + list(bands.values())].rename(columns={v: k for k, v in bands.items()})
    points = points.explode(list(bands))
    points["epoch"] = points.groupby(level=0).cumcount()
    for column in bands:
        values = points[column].astype(float)
        points[column] = values.where(values < float("inf"))
    points = points[points["loss"].notna()]
    points["label"] = label
    columns = [*PANEL, "optimizer", "id", "label", "seeds", "epoch", "loss", "low", "high"]
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
    """A sensitivity panel's name: ``line, batch size 10``, with the dtype where not float32."""
    return f"{problem}, batch size {batch_size}" + ("" if dtype == "float32" else f", {dtype}")


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
