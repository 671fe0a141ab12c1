"""Draws the report's figures with matplotlib, from the plot data alone.

Figures are built with matplotlib's object API, never pyplot, so drawing needs
no display and leaves the caller's backend and open figures alone.
"""

from __future__ import annotations

import io
import math

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from optbench.tune.choose import PASSING

_STYLES = {"": "-", "candidate": "-", "baseline": "--"}

MAX_LEGEND = 24
"""Past this many optimizers a legend hides the curves; the tables name them instead."""


def loss_curves_figure(
    curves: pd.DataFrame, floors: pd.DataFrame, panels: list[tuple[str, int, str]]
) -> Figure:
    """A panel per (problem, batch size, device), a line per optimizer (dashed: baseline), log-scale loss.

    A scenario of several seeds is drawn as its median with the 10-90% band shaded.
    """
    columns = min(len(panels), 2) or 1
    rows = math.ceil(len(panels) / columns) or 1
    # Constrained layout keeps the figure's title clear of the first row's panel titles.
    figure = Figure(figsize=(7 * columns, 4.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    names = sorted(curves.optimizer.unique())
    palette = matplotlib.colormaps["tab20"]
    colours = {name: palette(index % 20) for index, name in enumerate(names)}
    several_devices = len({device for _, _, device in panels}) > 1
    several_problems = len({problem for problem, _, _ in panels}) > 1
    for axis, (problem, batch_size, device) in zip(axes.flat, panels, strict=False):
        where = (curves.problem == problem) & (curves.batch_size == batch_size) & (curves.device == device)
        panel = curves[where]
        for (name, label), line in panel.groupby(["optimizer", "label"], sort=True):
            text = name if not label or label == "candidate" else f"{name} ({label})"
            seeds = int(line.seeds.max())
            if seeds > 1:
                text += f" (median of {seeds})"
                axis.fill_between(line.epoch, line.low, line.high, color=colours[name], alpha=0.15, lw=0)
            axis.plot(line.epoch, line.loss, _STYLES.get(label, "-"), color=colours[name], label=text, lw=1.4)
        floor = floors[
            (floors.problem == problem) & (floors.batch_size == batch_size) & (floors.device == device)
        ]
        if len(floor):
            axis.axhline(float(floor.loss.iloc[0]), color="black", lw=1, ls=":", label="reference loss")
        axis.set_yscale("log")
        title = f"{problem}: " if several_problems else ""
        axis.set_title(f"{title}batch size {batch_size}" + (f" on {device}" if several_devices else ""))
        axis.set_xlabel("epoch")
        axis.set_ylabel("full-data loss (log scale)")
        axis.grid(True, which="major", alpha=0.3)
        if len(names) <= MAX_LEGEND:
            axis.legend(fontsize="x-small", ncol=2, loc="upper right")
        else:
            axis.set_title(f"{axis.get_title()} ({len(names)} optimizers, legend omitted)")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(
        "Loss curves: every optimizer, each with its own fresh model and optimizer "
        "(several seeds: median, 10-90% band shaded)"
    )
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


def sensitivity_figure(curves: pd.DataFrame, threshold: float = PASSING) -> Figure:
    """Pass rate (top row) and 0.95-quantile excess loss (bottom row, log) against the learning rate.

    A column per panel of ``curves`` (``optbench.plots.data.sensitivity_curves``), in its order, at
    most ``SENSITIVITY_COLUMNS`` side by side; a line per optimizer, its chosen lr a large dot, and
    ``threshold`` dashed. Where the quantile is infinite (seeds diverged) its line has a gap and an
    ``x`` marks that lr at the top edge of the panel. The excess-loss axis stops a decade above nine
    tenths of its panel's points, and a line past that runs off the top; a point of 0 or less (at the
    reference's loss, to rounding) sits on its bottom edge. One legend serves every panel.
    """
    panels = list(dict.fromkeys(curves.panel))
    columns = min(len(panels), SENSITIVITY_COLUMNS) or 1
    bands = math.ceil(len(panels) / columns) or 1
    names = sorted(curves.optimizer.unique())
    width, height = 3.4 * columns + 2.4, 5.2 * bands + 1.4 * (bands - 1) + 0.5
    figure = Figure(figsize=(width, height))
    palette = matplotlib.colormaps["tab20"]
    colours = {name: palette(index % 20) for index, name in enumerate(names)}
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
            colour = colours[optimizer]
            top.plot(line.lr, line.pass_rate, ".-", color=colour, lw=1.2, ms=4)
            bottom.plot(line.lr, excess[line.index], ".-", color=colour, lw=1.2, ms=4)
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
        top.axhline(threshold, color="black", lw=1, ls="--")
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
    handles = [Line2D([], [], color=colours[name], marker=".", lw=1.2, label=name) for name in names]
    handles += [
        Line2D([], [], lw=0, marker="o", mec="black", mfc="lightgrey", ms=7, label="chosen lr"),
        Line2D([], [], color="black", lw=1, ls="--", label=f"pass rate {threshold:g}"),
        Line2D([], [], color="grey", marker="x", lw=0, label="diverged (q95 infinite)"),
    ]
    figure.legend(handles=handles, loc="upper right", bbox_to_anchor=(1, 1 - 0.5 / height), fontsize="small")
    figure.suptitle("Learning-rate sensitivity: each tuned case's sweep over seeds", y=1 - 0.1 / height)
    return figure


def seed_figure(curves: pd.DataFrame, floor: float | None) -> Figure:
    """The tutorial's plot done right: SGD against Adam, per-step loss on a log scale."""
    figure = Figure(figsize=(7, 4.6))
    axis = figure.subplots()
    labels = {"seed.sgd": "SGD (lr 0.01)", "seed.adam": "Adam (lr 0.01)"}
    order = {name: index for index, name in enumerate(labels)}
    for name, line in sorted(
        curves.groupby("optimizer", sort=False), key=lambda item: order.get(item[0], 99)
    ):
        axis.plot(line.step, line.loss, label=labels.get(name, name), lw=1.4)
    if floor is not None:
        axis.axhline(floor, color="black", lw=1, ls=":", label="reference loss (least squares)")
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
