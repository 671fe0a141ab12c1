"""One look per optimizer (colour, line style, marker), the same in every figure of a report.

A name's look comes from its index: ``PALETTE[i % 14]``, ``LINESTYLES[(i // 14) % 4]`` and
``MARKERS[i % 9]``, so 14 names in a row differ in colour (the 14 built-in optimizers all do), 56
differ in colour or line style, and the triple repeats only after 504 names (``lcm(56, 9)``). The
index is fixed, not hashed: a hash would give two of 14 names the same colour about as often as not.
The built-in optimizers take their place in the registry (alphabetical), so Adam has the same look
in every optbench report whatever else it holds; the other names a report draws (added optimizers)
follow in sorted order. Build the looks once per report, from every name any of its figures draws,
and hand the mapping to each figure: a figure that builds its own from fewer names would give an
added optimizer another look.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from optbench.optimizers.registry import OPTIMIZERS

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#000080",
    "#b8860b",
    "#8b008b",
    "#000000",
)
"""matplotlib's tab10, then navy, dark goldenrod, dark magenta and black: fourteen colours, one per
built-in optimizer (SGD, the reference, in black). Not every pair is colour-blind safe (green and
red), which is why neighbours in the order also differ in marker, and the next fourteen in line style."""

LINESTYLES = ("-", "--", ":", "-.")
"""Line styles, changing every fourteen names (``PALETTE``'s length)."""

MARKERS = ("o", "s", "^", "D", "v", "*", "h", "P", "<")
"""Markers, changing with every name; nine, prime to fourteen and four, so they cycle apart. No ``X``
or ``x``: a red ``X`` marks a failed curve's end in the loss curves, and a diverged sweep point's."""


@dataclass(frozen=True)
class Look:
    """How one optimizer is drawn: matplotlib's colour, line style and marker."""

    colour: str
    linestyle: str
    marker: str


def look(index: int) -> Look:
    """The look of the name at ``index`` in a report's order (see the module's docstring)."""
    return Look(
        PALETTE[index % len(PALETTE)],
        LINESTYLES[(index // len(PALETTE)) % len(LINESTYLES)],
        MARKERS[index % len(MARKERS)],
    )


def order(names: Iterable[str]) -> list[str]:
    """``names`` without repeats: the built-in optimizers in registry order, then the others, sorted."""
    wanted = set(names)
    return [name for name in OPTIMIZERS if name in wanted] + sorted(wanted.difference(OPTIMIZERS))


def looks(names: Iterable[str]) -> dict[str, Look]:
    """Each of ``names`` and its look: a built-in optimizer's by its registry index, the rest after.

    Args:
        names: every optimizer name the report draws (repeats are fine).

    Returns:
        A look per name, in ``order``; all different up to 504 names.
    """
    index = {name: position for position, name in enumerate(OPTIMIZERS)}
    others = sorted(set(names).difference(index))
    index.update((name, len(OPTIMIZERS) + position) for position, name in enumerate(others))
    return {name: look(index[name]) for name in order(names)}


def looks_for(names: Iterable[str], given: Mapping[str, Look] | None) -> Mapping[str, Look]:
    """``given`` where it has every name (a report's shared looks), else looks built from ``names`` and it."""
    wanted = set(names)
    if given is not None and wanted.issubset(given):
        return given
    return looks(wanted if given is None else wanted.union(given))
