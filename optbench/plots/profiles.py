"""Performance profiles (Dolan and Moré, 2002) and one score per optimizer, as AlgoPerf scores them.

A case is one problem at one batch size, device, dtype and schedule (``data.CASE``): a column of the
heatmaps. On each case an optimizer's time to target (``data.times_to_target``: the median seed's,
a case that did not converge on most seeds unsolved) is divided by the fastest optimizer's on that
case; its profile at ``tau`` is the share of all cases it solved within ``tau`` times the fastest.
Ratios are taken within a case, so cases on different devices, dtypes or schedules pool into one
profile, each measured against its own fastest. Every case any optimizer ran counts for every
optimizer: one that did not run a case, or did not solve it, lacks it at every ``tau``.

The score is the area under the profile over ``log tau`` from 0 to ``log TAU_MAX``, divided by
``log TAU_MAX``: 1 for an optimizer fastest on every case, 0 for one within ``TAU_MAX`` times the
fastest on none. Equivalently, the mean over cases of ``1 - log(ratio) / log(TAU_MAX)``, counting 0
for a case unsolved or solved more than ``TAU_MAX`` times slower. AlgoPerf integrates its profiles
the same way up to its own ``tau_max`` (4, on a linear axis); the log axis here weighs "twice as
slow" the same whether the fastest took 1 s or 100 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from optbench.plots.data import CASE

TAU_MAX = 10.0
"""How many times the fastest optimizer's time a profile runs to: a case solved slower counts as unsolved."""

MEASURES = {
    "seconds": "seconds to target (the median seed's run)",
    "steps": "optimizer steps to target (the median seed's)",
}
"""What a profile can measure, a column of ``data.times_to_target``, and how a figure names it."""

PROFILE = ["measure", "optimizer", "tau", "share"]
"""The columns of ``performance_profiles``."""


def ratios(times: pd.DataFrame, measure: str = "seconds") -> pd.DataFrame:
    """Each optimizer's performance ratio on each case it ran: its time over the case's fastest.

    Returns:
        Columns ``optimizer``, ``CASE`` and ``ratio``: 1 for the fastest (and where the fastest
        took no time at all, for every optimizer that took none either), ``inf`` where the
        optimizer did not solve the case (or took time where the fastest took none).
    """
    value = times[measure].astype(float)
    best = value.groupby([times[column] for column in CASE]).transform("min")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (value / best).where(value != best, 1.0)
    ratio = ratio.where(value.notna(), math.inf)
    return times[["optimizer", *CASE]].assign(ratio=ratio.astype(float))


def performance_profiles(times: pd.DataFrame, measures: Sequence[str] = tuple(MEASURES)) -> pd.DataFrame:
    """Each optimizer's performance profile per measure, as the steps of a step function of ``tau``.

    Args:
        times: ``data.times_to_target``'s rows, one per optimizer and case.
        measures: the times to compare, keys of ``MEASURES`` (by default both).

    Returns:
        Columns ``PROFILE``, per measure (in the order given) and optimizer (sorted by name) rows
        in increasing ``tau``: ``tau = 1``, then each distinct ratio in ``(1, TAU_MAX)``, then
        ``TAU_MAX``. ``share`` is the share of all cases (``CASE`` values in ``times``) solved
        within ``tau`` times the fastest, and holds from its ``tau`` up to the next row's. No rows
        when ``times`` has none.

    Raises:
        ValueError: a measure is not one of ``MEASURES``.
    """
    for measure in measures:
        if measure not in MEASURES:
            raise ValueError(f"measure {measure!r}: choose from {', '.join(MEASURES)}")
    parts = [_profile(times, measure) for measure in measures]
    if not parts:
        return _profile(times.iloc[:0], "seconds")
    return pd.concat(parts, ignore_index=True)


def _profile(times: pd.DataFrame, measure: str) -> pd.DataFrame:
    """One measure's profiles (``performance_profiles``)."""
    if not len(times):
        return pd.DataFrame({column: [] for column in PROFILE}).astype({"tau": float, "share": float})
    cases = len(times[CASE].drop_duplicates())
    ratio = ratios(times, measure)
    names = sorted(ratio.optimizer.unique())
    inside = ratio[ratio.ratio <= TAU_MAX]
    counts = inside.groupby(["optimizer", "ratio"]).size().rename("count").reset_index()
    counts["share"] = counts.groupby("optimizer")["count"].cumsum() / cases
    steps = counts[(counts.ratio > 1) & (counts.ratio < TAU_MAX)].rename(columns={"ratio": "tau"})
    at_one = counts[counts.ratio <= 1].set_index("optimizer").share.reindex(names, fill_value=0.0)
    at_max = counts.groupby("optimizer").share.max().reindex(names, fill_value=0.0)
    ends = pd.DataFrame(
        {
            "optimizer": names * 2,
            "tau": [1.0] * len(names) + [TAU_MAX] * len(names),
            "share": [*at_one, *at_max],
        }
    )
    profile = pd.concat([ends, steps[["optimizer", "tau", "share"]]], ignore_index=True)
    profile = profile.sort_values(["optimizer", "tau"], kind="stable").reset_index(drop=True)
    profile.insert(0, "measure", measure)
    return profile[PROFILE].astype({"tau": float, "share": float})


def profile_scores(profiles: pd.DataFrame) -> pd.DataFrame:
    """Each optimizer's score: the normalised area under its profile over ``log tau`` up to ``log TAU_MAX``.

    Args:
        profiles: ``performance_profiles``'s rows (one measure or several).

    Returns:
        Columns ``measure, optimizer, score``, a score in ``[0, 1]`` per measure and optimizer,
        highest first (ties by name).
    """
    ordered = profiles.sort_values(["measure", "optimizer", "tau"], kind="stable")
    width = np.log(ordered.groupby(["measure", "optimizer"]).tau.shift(-1) / ordered.tau)
    area = (ordered.share * width.fillna(0.0)).groupby([ordered.measure, ordered.optimizer]).sum()
    scores = (area / math.log(TAU_MAX)).rename("score").reset_index()
    scores = scores.sort_values(["measure", "score", "optimizer"], ascending=[True, False, True])
    return scores.reset_index(drop=True)
