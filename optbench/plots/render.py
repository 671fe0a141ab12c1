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
    figure = Figure(figsize=(7 * columns, 4.6 * rows))
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
    figure.tight_layout()
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
