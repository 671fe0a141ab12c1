"""Draws the report's figures with matplotlib, from the plot data alone.

Figures are built with matplotlib's object API, never pyplot, so drawing needs
no display and leaves the caller's backend and open figures alone.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PatchCollection
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, NullLocator

from optbench.plots.data import PANEL, full_batch
from optbench.plots.profiles import MEASURES, TAU_MAX
from optbench.plots.style import Look, looks_for, order
from optbench.plots.style import looks as style_looks
from optbench.tune.choose import PASSING

MAX_LEGEND = 24
"""Past this many optimizers a legend hides the curves; the tables name them instead."""

LINTHRESH = 1.0
"""The loss curves' x axis is linear from epoch 0 to this, logarithmic after (matplotlib's symlog)."""

TOP_DECADES = 1.5
"""How far above the highest starting loss of a panel its y axis goes: a blow-up past it runs off the top."""

_OUTCOME_MARKS = {
    "failed": {"marker": "X", "c": "#d00000", "s": 70, "edgecolors": "white", "linewidths": 0.6},
    "expected failure": {"marker": "o", "facecolors": "none", "edgecolors": "k", "s": 55, "linewidths": 1},
}
"""How the end of a failed or expected-failure curve is marked (``data.OUTCOMES``)."""

_OUTCOME_LABELS = {
    "failed": "failed: not converged, no expected failure",
    "expected failure": "not converged, as its expected failure allows",
}


def _outcome_handles() -> list[Line2D]:
    handles = []
    for outcome, mark in _OUTCOME_MARKS.items():
        face = mark.get("c", mark.get("facecolors"))
        handles.append(
            Line2D(
                [], [], lw=0, marker=mark["marker"], ms=8, mfc=face, mec=mark["edgecolors"],
                label=_OUTCOME_LABELS[outcome],
            )
        )  # fmt: skip
    return handles


def _look_handle(name: str, look: Look, label: str | None = None, marker: bool = True) -> Line2D:
    return Line2D(
        [], [], color=look.colour, ls=look.linestyle, marker=look.marker if marker else "", ms=5, lw=1.4,
        label=name if label is None else label,
    )  # fmt: skip


_PLAIN = FuncFormatter(lambda value, _: f"{value:g}")
"""Tick labels as plain numbers (1, 10, 100), not powers of ten."""

LOSS_COLUMNS = 4
"""Panels side by side in the loss curves, unless one problem has more batch sizes than that."""


def panel_grid(panels: list[tuple[str, int, str]]) -> dict[tuple[str, int, str], tuple[int, int]]:
    """Where each loss-curve panel goes: ``(row, column)``, a problem's panels side by side in one row.

    A problem (on a device) is a block of its batch sizes, smallest first; blocks go in sorted order,
    each into the first row with room for it (``LOSS_COLUMNS`` wide, or the widest block), so that
    problems of one or two batch sizes share a row instead of leaving most of the figure blank.
    """
    blocks: dict[tuple[str, str], list[int]] = {}
    for problem, batch_size, device in sorted(panels):
        blocks.setdefault((problem, device), []).append(batch_size)
    width = max([LOSS_COLUMNS, *(len(sizes) for sizes in blocks.values())])
    used: list[int] = []
    places = {}
    for (problem, device), sizes in blocks.items():
        row = next((index for index, taken in enumerate(used) if taken + len(sizes) <= width), len(used))
        if row == len(used):
            used.append(0)
        for offset, batch_size in enumerate(sizes):
            places[problem, batch_size, device] = (row, used[row] + offset)
        used[row] += len(sizes)
    return places


def loss_curves_figure(
    curves: pd.DataFrame,
    floors: pd.DataFrame,
    panels: list[tuple[str, int, str]],
    looks: Mapping[str, Look] | None = None,
) -> Figure:
    """A panel per problem and batch size (and device), a problem's in one row, a line per optimizer.

    Panels go where ``panel_grid`` puts them. Each optimizer is drawn in its look (``style``), the
    same in every figure that gets the same ``looks``; the median over seeds with its 10-90% band
    shaded, a baseline's faint and thin under the candidate's. The x axis is epochs (passes over the
    data, which compare across batch sizes), linear to ``LINTHRESH`` and logarithmic after: curves
    end at 20 to 1,000 epochs (Adadelta's 300 where the rest stop at 100), and a log axis shows each
    whole, with the first epochs, where the optimizers differ most, spread out; a cut at the common
    length would hide how the long runs end. The loss axis is logarithmic and stops ``TOP_DECADES``
    above the panel's highest starting loss, so one blow-up does not flatten the rest. A failed
    curve ends in a red ``X``, an expected failure's in a ring (on the top edge where it ran off);
    the reference loss is dotted. One legend, outside the panels, serves them all; past
    ``MAX_LEGEND`` optimizers it names the marks alone.
    """
    names = sorted(set(curves.optimizer))
    looks = looks_for(names, looks)
    places = panel_grid(panels)
    rows = max((row for row, _ in places.values()), default=0) + 1
    columns = max((column for _, column in places.values()), default=0) + 1
    width, height = 3.7 * columns + 3.6, 2.9 * rows + 1.0
    figure = Figure(figsize=(width, height))
    # Margins in inches, set once: a layout engine measures every tick label, costing more than the drawing.
    grid = figure.add_gridspec(
        rows, columns, left=0.75 / width, right=1 - 3.5 / width,
        bottom=0.5 / height, top=1 - 0.75 / height, wspace=0.28, hspace=0.5,
    )  # fmt: skip
    several_devices = len({device for _, _, device in panels}) > 1
    legend = len(names) <= MAX_LEGEND
    groups = dict(list(curves.groupby(PANEL, sort=False))) if len(curves) else {}
    index = {name: position for position, name in enumerate(names)}  # staggers the markers of lines
    for problem, batch_size, device in panels:
        row, column = places[problem, batch_size, device]
        axis = figure.add_subplot(grid[row, column])
        panel = groups.get((problem, batch_size, device), curves.iloc[:0])
        axis.set_yscale("log")  # before the limits are read
        for (name, label), line in panel.groupby(["optimizer", "label"], sort=True):
            look, baseline = looks[name], label == "baseline"
            if int(line.seeds.max()) > 1 and not baseline:
                axis.fill_between(line.epoch, line.low, line.high, color=look.colour, alpha=0.1, lw=0)
            axis.plot(
                line.epoch, line.loss, color=look.colour, ls=look.linestyle, lw=0.9 if baseline else 1.4,
                alpha=0.45 if baseline else 1.0, marker=look.marker if legend and not baseline else "",
                ms=4, markevery=(0.02 * (index[name] % 5), 0.12),
            )  # fmt: skip
        floor = floors[(floors.problem == problem) & (floors.batch_size == batch_size)]
        floor = floor[floor.device == device]
        if len(floor) and float(floor.loss.iloc[0]) > 0:
            axis.axhline(float(floor.loss.iloc[0]), color="black", lw=1, ls=":")
        starts = panel.loss[panel.epoch == 0]
        if len(starts):  # a blow-up runs off the top, not flattening the rest
            axis.set_ylim(top=min(axis.get_ylim()[1], float(starts.max()) * 10**TOP_DECADES))
        bottom, top = axis.get_ylim()
        ends = panel.groupby(["optimizer", "label"], sort=False).tail(1)
        for outcome, mark in _OUTCOME_MARKS.items():
            marked = ends[ends.outcome == outcome]
            if len(marked):  # one collection per kind of mark, not one artist per curve
                ys = marked.loss.astype(float).clip(upper=top)
                axis.scatter(marked.epoch, ys, zorder=4, clip_on=False, **mark)
        axis.set_xscale("symlog", linthresh=LINTHRESH, linscale=0.4)
        axis.set_xlim(0, max(float(panel.epoch.max()) if len(panel) else 1.0, 1.0))
        axis.xaxis.set_major_formatter(_PLAIN)
        # Decades are enough, and minor ticks on log axes cost most of the drawing; a panel within one
        # decade keeps them, as without them its axis would have no number at all.
        axis.xaxis.set_minor_locator(NullLocator())
        if top / bottom > 10:
            axis.yaxis.set_minor_locator(NullLocator())
        where = f" on {device}" if several_devices else ""
        size = "full batch" if len(panel) and full_batch(panel.id).all() else f"batch size {batch_size}"
        axis.set_title(f"{problem}, {size}{where}", fontsize="medium")
        axis.set_xlabel("epoch (log scale past 1)", fontsize="small")
        if column == 0:
            axis.set_ylabel("full-data loss (log)", fontsize="small")
        axis.grid(True, which="major", alpha=0.3)
    handles = [_look_handle(name, looks[name]) for name in order(names)] if legend else []
    handles.append(Line2D([], [], color="black", lw=1, ls=":", label="reference loss"))
    handles += _outcome_handles()
    if "baseline" in set(curves.label):
        handles.append(Line2D([], [], color="grey", lw=0.9, alpha=0.45, label="baseline (faint, thin)"))
    title = None if legend else f"{len(names)} optimizers:\nnames omitted,\nsee the table"
    figure.legend(
        handles=handles, loc="upper right", bbox_to_anchor=(1 - 0.1 / width, 1 - 0.75 / height),
        fontsize="small", title=title, frameon=False,
    )  # fmt: skip
    figure.suptitle(
        "Loss curves: a problem's batch sizes side by side, each optimizer with its own fresh model\n"
        "x: epochs (passes over the data), log scale past epoch 1; several seeds: median, 10-90% band shaded",
        y=1 - 0.1 / height, va="top",
    )  # fmt: skip
    return figure


SENSITIVITY_COLUMNS = 4
"""Panels side by side in the sensitivity figure; more go on further pairs of rows."""


def _excess_limits(excess: pd.Series) -> tuple[float, float] | None:
    """The excess-loss axis: from the lowest positive value to a decade above nine tenths of them.

    A blown-up sweep's points reach 1e30 and more; drawn whole, they would flatten every other line.
    ``None`` where no value is positive.
    """
    logs = excess[excess > 0].map(math.log10)
    if not len(logs):
        return None
    top = min(logs.max(), logs.quantile(0.9) + 1)
    return 10 ** (logs.min() - 0.3), 10 ** min(top + 0.3, 300.0)


THRESHOLD_COLOUR = "#9e9e9e"
"""The pass-rate threshold's grey: in no optimizer's look (``optbench.plots.style.PALETTE``)."""


def sensitivity_figure(
    curves: pd.DataFrame, threshold: float = PASSING, looks: Mapping[str, Look] | None = None
) -> Figure:
    """Pass rate (top row) and 0.95-quantile excess loss (bottom row, log) against the learning rate.

    A column per panel of ``curves`` (``optbench.plots.data.sensitivity_curves``), in its order, at
    most ``SENSITIVITY_COLUMNS`` side by side; a line per optimizer, its chosen lr a large dot, and
    ``threshold`` dashed. Where the quantile is infinite (seeds diverged) its line has a gap and an
    ``x`` marks that lr at the top edge of the panel. The excess-loss axis stops a decade above nine
    tenths of its panel's points, and a line past that runs off the top; a point of 0 or less (at the
    reference's loss, to rounding) sits on its bottom edge. One legend serves every panel. Each
    optimizer is drawn in its look (``style``; ``looks``, shared with the report's other figures).
    """
    panels = list(dict.fromkeys(curves.panel))
    columns = min(len(panels), SENSITIVITY_COLUMNS) or 1
    bands = math.ceil(len(panels) / columns) or 1
    names = sorted(curves.optimizer.unique())
    width, height = 3.4 * columns + 2.4, 5.2 * bands + 1.4 * (bands - 1) + 0.5
    figure = Figure(figsize=(width, height))
    looks = looks_for(names, looks)
    colours = {name: look.colour for name, look in looks.items()}
    # Margins in inches, set once: a layout engine measures every tick label, costing more than the drawing.
    # Each band of panels is two rows (pass rate, excess loss), bands apart by an empty row.
    grid = figure.add_gridspec(
        3 * bands - 1,
        columns,
        height_ratios=([1, 1, 0.3] * bands)[:-1],
        left=0.75 / width,
        right=1 - 2.0 / width,
        bottom=0.55 / height,
        top=1 - 0.6 / height,
        wspace=0.25,
        hspace=0.12,
    )
    pairs = []
    for index in range(len(panels)):
        row, column = 3 * (index // columns), index % columns
        top = figure.add_subplot(grid[row, column])
        pairs.append((top, figure.add_subplot(grid[row + 1, column], sharex=top)))
    for (top, bottom), name in zip(pairs, panels, strict=True):
        panel = curves[curves.panel == name]
        limits = _excess_limits(panel.excess_q95)
        excess = panel.excess_q95  # NaN (diverged) leaves a gap; 0 or less goes on the bottom edge
        if limits is not None:
            excess = excess.mask(excess <= 0, limits[0])
        for optimizer, line in panel.groupby("optimizer", sort=True):
            look = looks[optimizer]
            drawn = {"color": look.colour, "ls": look.linestyle, "marker": look.marker, "lw": 1.2, "ms": 3}
            top.plot(line.lr, line.pass_rate, **drawn)
            bottom.plot(line.lr, excess[line.index], **drawn)
        # One collection per row for the marks, not one line each: drawing time grows with the artists.
        chosen = panel[panel.chosen]
        marks = {
            "c": [colours[optimizer] for optimizer in chosen.optimizer],
            "s": 45,
            "edgecolors": "black",
            "zorder": 3,
        }
        top.scatter(chosen.lr, chosen.pass_rate, **marks)
        bottom.scatter(chosen.lr, excess[chosen.index], **marks)
        diverged = panel[panel.excess_q95.isna()]
        bottom.scatter(
            diverged.lr,
            [1.0] * len(diverged),  # on the panel's top edge: x in data, y in axes
            c=[colours[optimizer] for optimizer in diverged.optimizer],
            marker="x",
            s=30,
            clip_on=False,
            transform=bottom.get_xaxis_transform(),
        )
        top.axhline(threshold, color=THRESHOLD_COLOUR, lw=1.2, ls="--")
        top.set_title(name, fontsize="medium", y=1.0)  # placed, not measured: measuring costs a tenth
        top.tick_params(labelbottom=False)  # the bottom row's x axis is the same
        top.set_ylim(-0.03, 1.03)
        if limits is not None:
            bottom.set_yscale("log")
            bottom.set_ylim(*limits)
        bottom.set_xlabel("learning rate (log scale)")
        for axis in (top, bottom):
            axis.set_xscale("log")
            axis.minorticks_off()  # decades are enough, and minor ticks on log axes cost most of the drawing
            axis.grid(True, which="major", alpha=0.3)
    for top, bottom in pairs[::columns]:
        top.set_ylabel("pass rate over seeds")
        bottom.set_ylabel("0.95-quantile excess loss (log)")
    handles = [_look_handle(name, looks[name]) for name in order(names)]
    handles += [
        Line2D([], [], lw=0, marker="o", mec="black", mfc="lightgrey", ms=7, label="chosen lr"),
        Line2D([], [], color=THRESHOLD_COLOUR, lw=1.2, ls="--", label=f"pass rate {threshold:g}"),
        Line2D([], [], color="grey", marker="x", lw=0, label="diverged (q95 infinite)"),
    ]
    figure.legend(handles=handles, loc="upper right", bbox_to_anchor=(1, 1 - 0.5 / height), fontsize="small")
    figure.suptitle("Learning-rate sensitivity: each tuned case's sweep over seeds", y=1 - 0.1 / height)
    return figure


@dataclass(frozen=True)
class Heatmap:
    """How ``heatmap_figure`` draws one column of the cells: its title, colours and numbers."""

    title: str
    colour_label: str
    cmap: str
    log: bool
    number: str
    """The cells' number format (``format``'s spec)."""
    missing: str
    """What a cell that ran without a value means, or ``""`` where every run cell has one."""


NEVER = "never reached: fewer than half the seeds converged"

HEATMAPS = {
    "pass_rate": Heatmap(
        "Pass rate: the share of each case's seeds that converged", "pass rate over seeds", "viridis",
        False, ".2f", "",
    ),
    "seconds": Heatmap(
        "Time to target: the median seed's seconds until its loss came within the bound",
        "seconds to target (log)", "viridis_r", True, ".2g", NEVER,
    ),
    "steps": Heatmap(
        "Steps to target: the median seed's optimizer steps until its loss came within the bound",
        "steps to target (log)", "viridis_r", True, ".3g", NEVER,
    ),
}  # fmt: skip
"""The heatmaps ``heatmap_figure`` draws, by the column of ``data.pass_rates``/``data.times_to_target``."""

MAX_ROWS = 40
"""Optimizers a heatmap shows at most (the first in ``style.order``); the title says how many it left out."""

MAX_COLUMNS = 40
"""Cases a heatmap shows at most (the first in ``data.CASE`` order); the title says how many it left out."""

_NOT_RUN = (0.85, 0.85, 0.85, 1.0)
_NO_VALUE = (1.0, 1.0, 1.0, 1.0)


def _shown(kept: int, total: int, what: str) -> str:
    return "" if kept == total else f"the first {kept} of {total} {what}"


def heatmap_figure(cells: pd.DataFrame, value: str = "pass_rate") -> Figure:
    """Optimizers (rows) by cases (columns), each cell coloured by ``value`` and written in it.

    Args:
        cells: ``data.pass_rates`` (``value="pass_rate"``) or ``data.times_to_target``
            (``"seconds"`` or ``"steps"``, on a log colour scale).
        value: which column to draw, a key of ``HEATMAPS``.

    Returns:
        One axes and its colour bar. Rows follow ``style.order``, columns ``cells``' order; at most
        ``MAX_ROWS`` by ``MAX_COLUMNS`` cells, the title saying what was left out. A case the
        optimizer did not run is grey and empty; a run cell without a value (never reached) is
        white with a dash; a case with an expected failure is hatched.
    """
    spec = HEATMAPS[value]
    names, columns = order(set(cells.optimizer)), list(dict.fromkeys(cells.column))
    rows_shown, columns_shown = names[:MAX_ROWS], columns[:MAX_COLUMNS]
    row_of = {name: index for index, name in enumerate(rows_shown)}
    column_of = {name: index for index, name in enumerate(columns_shown)}
    kept = cells[cells.optimizer.isin(row_of) & cells.column.isin(column_of)]
    at = (kept.optimizer.map(row_of).to_numpy(int), kept.column.map(column_of).to_numpy(int))
    shape = (len(rows_shown), len(columns_shown))
    values, ran, xfail = np.full(shape, np.nan), np.zeros(shape, bool), np.zeros(shape, bool)
    values[at] = kept[value].astype(float).to_numpy()
    ran[at] = True
    xfail[at] = kept.xfail.to_numpy(bool)
    cmap = matplotlib.colormaps[spec.cmap]
    finite = values[np.isfinite(values) & (values > 0 if spec.log else True)]
    if spec.log and len(finite):
        norm: Normalize = LogNorm(finite.min(), max(finite.max(), finite.min() * 10))
        colours = cmap(norm(np.clip(values, finite.min(), None)))
    else:
        norm = Normalize(0.0, 1.0) if not spec.log else LogNorm(1, 10)
        colours = cmap(norm(values))
    colours[ran & np.isnan(values)] = _NO_VALUE
    colours[~ran] = _NOT_RUN
    left_out = [
        text
        for text in (
            _shown(len(rows_shown), len(names), "optimizers"),
            _shown(len(columns_shown), len(columns), "cases"),
        )
        if text
    ]
    notes = ["hatched: an expected failure (xfail mark)", "grey: not run"]
    notes += [spec.missing] if spec.missing else []
    title = spec.title + (f" ({', '.join(left_out)})" if left_out else "") + ". " + "; ".join(notes) + "."
    # Margins in inches from the labels' lengths: a layout engine would measure every label instead.
    left = 0.4 + 0.075 * max((len(name) for name in rows_shown), default=4)
    bottom = 0.3 + 0.043 * max((len(column) for column in columns_shown), default=4)
    width = max(left + 0.62 * shape[1] + 1.4, 6.0)
    lines = textwrap.wrap(title, int((width - 0.3) / 0.085))  # about 0.085 in a character, medium size
    height = 0.45 + 0.2 * len(lines) + 0.26 * shape[0] + bottom
    figure = Figure(figsize=(width, height))
    box = (left / width, bottom / height, 0.62 * shape[1] / width, 0.26 * shape[0] / height)
    axis = figure.add_axes(box)
    axis.imshow(colours, aspect="auto", interpolation="nearest")
    shade = colours[..., 0] * 0.299 + colours[..., 1] * 0.587 + colours[..., 2] * 0.114
    size = "x-small" if shape[0] > 20 or shape[1] > 20 else "small"
    for row, column in zip(*np.nonzero(ran), strict=True):
        number = values[row, column]
        text = "\u2014" if math.isnan(number) else format(number, spec.number)
        ink = "white" if shade[row, column] < 0.45 else "black"
        axis.text(column, row, text, ha="center", va="center", color=ink, fontsize=size)
    hatched = zip(*np.nonzero(xfail), strict=True)
    boxes = [Rectangle((column - 0.5, row - 0.5), 1, 1) for row, column in hatched]
    if boxes:  # one collection for every hatched cell
        axis.add_collection(
            PatchCollection(boxes, facecolor="none", edgecolor=(0.5, 0.5, 0.5, 0.9), hatch="///", linewidth=0)
        )
    axis.set_xticks(range(shape[1]), columns_shown, rotation=40, ha="right", rotation_mode="anchor")
    axis.set_yticks(range(shape[0]), rows_shown)
    axis.tick_params(length=0, labelsize=size)
    bar = figure.add_axes((box[0] + box[2] + 0.25 / width, box[1], 0.18 / width, box[3]))
    figure.colorbar(ScalarMappable(norm, cmap), cax=bar, label=spec.colour_label)
    figure.suptitle("\n".join(lines), x=0.1 / width, ha="left", y=1 - 0.1 / height, va="top", size="medium")
    return figure


PROFILE_NUDGE = 0.012
"""How far apart, at most, profiles are drawn: equal profiles would hide each other otherwise."""


def profiles_figure(
    profiles: pd.DataFrame,
    scores: pd.DataFrame,
    looks: Mapping[str, Look] | None = None,
    cases: int | None = None,
) -> Figure:
    """A panel of performance profiles per measure (``profiles.MEASURES``), share solved against tau.

    Args:
        profiles: ``profiles.performance_profiles``' rows, of one measure or several.
        scores: ``profiles.profile_scores`` of them; the legend gives each optimizer's, and ranks
            the optimizers by the first measure's.
        looks: the report's looks (``style.looks``); built from the profiles' names if not given.
        cases: how many cases the profiles count, for the y label.

    Returns:
        A figure of one axes per measure: each optimizer's profile as a step line in its look, on a
        log tau axis from 1 to ``TAU_MAX``. Profiles are nudged up to ``PROFILE_NUDGE`` apart so that
        equal ones stay visible. Past ``MAX_LEGEND`` optimizers, the best-scoring ones are drawn and
        the title says so.
    """
    measures = [measure for measure in MEASURES if measure in set(profiles.measure)]
    names = sorted(set(profiles.optimizer))
    looks = looks_for(names, looks)
    first = scores[scores.measure == measures[0]] if measures else scores.iloc[:0]
    ranked = list(first.sort_values(["score", "optimizer"], ascending=[False, True]).optimizer)
    shown = ranked[:MAX_LEGEND]
    score_of = {(row.measure, row.optimizer): row.score for row in scores.itertuples()}
    width, height = 5.0 * max(len(measures), 1) + 3.4, max(5.0, 1.4 + 0.19 * len(shown))
    figure = Figure(figsize=(width, height))
    grid = figure.add_gridspec(
        1, max(len(measures), 1), left=0.7 / width, right=1 - 3.3 / width, bottom=0.75 / height,
        top=1 - 1.0 / height, wspace=0.22,
    )  # fmt: skip
    step = PROFILE_NUDGE / max(len(shown) - 1, 1)
    for index, measure in enumerate(measures):
        axis = figure.add_subplot(grid[0, index])
        drawn = profiles[profiles.measure == measure]
        for rank, name in enumerate(shown):
            line = drawn[drawn.optimizer == name]
            look = looks[name]
            nudge = step * rank - PROFILE_NUDGE / 2
            axis.step(
                line.tau, line.share + nudge, where="post", color=look.colour, ls=look.linestyle, lw=1.5,
                marker=look.marker, ms=4,
            )  # fmt: skip
        axis.set_xscale("log")
        axis.set_xlim(1, TAU_MAX)
        axis.set_ylim(-0.03, 1.03)
        axis.set_xticks([1, 2, 3, 5, 10])
        axis.xaxis.set_major_formatter(_PLAIN)
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xlabel("\u03c4: times the fastest optimizer's time on the case (log)")
        if index == 0:
            solved = f"the {cases} cases" if cases else "the cases"
            axis.set_ylabel(f"share of {solved} solved within \u03c4")
        axis.set_title(MEASURES[measure], fontsize="medium")
        axis.grid(True, alpha=0.3)
    def label(name: str) -> str:
        numbers = " / ".join(f"{score_of.get((measure, name), 0.0):.2f}" for measure in measures)
        return f"{name}  {numbers}"

    handles = [_look_handle(name, looks[name], label(name)) for name in shown]
    figure.legend(
        handles=handles, loc="upper right", bbox_to_anchor=(1 - 0.1 / width, 1 - 1.0 / height),
        fontsize="small", frameon=False, title="score: " + " / ".join(measures), title_fontsize="small",
    )  # fmt: skip
    left_out = _shown(len(shown), len(ranked), "optimizers").replace("first", "best-scoring")
    left_out = f" ({left_out})" if left_out else ""
    figure.suptitle(
        f"Performance profiles{left_out}: higher and further left is better\n"
        f"score: the area under the profile over log \u03c4 from 1 to {TAU_MAX:g}, over the largest it "
        "can be (1: fastest on every case)",
        y=1 - 0.1 / height, va="top", fontsize="medium",
    )  # fmt: skip
    return figure


def seed_figure(curves: pd.DataFrame, floor: float | None) -> Figure:
    """The tutorial's plot done right: SGD against Adam, per-step loss on a log scale.

    Each is drawn in the colour its optimizer has in every other figure (``optbench.plots.style``),
    the floor in grey, apart from SGD's black.
    """
    figure = Figure(figsize=(7, 4.6))
    axis = figure.subplots()
    labels = {"seed.sgd": "SGD (lr 0.01)", "seed.adam": "Adam (lr 0.01)"}
    order = {name: index for index, name in enumerate(labels)}
    colours = {name: look.colour for name, look in style_looks(["adam", "sgd"]).items()}
    for name, line in sorted(
        curves.groupby("optimizer", sort=False), key=lambda item: order.get(item[0], 99)
    ):
        colour = colours.get(str(name).removeprefix("seed."))
        axis.plot(line.step, line.loss, label=labels.get(name, name), lw=1.4, color=colour)
    if floor is not None:
        axis.axhline(floor, color=THRESHOLD_COLOUR, lw=1.2, ls=":", label="reference loss (least squares)")
    axis.set_yscale("log")
    axis.set_xlabel("step (batch size 1; mean loss per window)")
    axis.set_ylabel("training loss (log scale)")
    axis.set_title("The tutorial's comparison, each model with its own optimizer")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return figure


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
