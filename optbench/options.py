"""Options shared by the pytest plugin and the command-line tools: their definitions and parsers.

Each parser raises ``argparse.ArgumentTypeError`` with one sentence, so pytest and
argparse both report the flag and the bad value on one line. A list may not name one
value twice, and seeds, seed counts and timeouts have documented maxima (``MAX_SEED``,
``MAX_SEEDS``, ``MAX_TIMEOUT``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from optbench.devices import parse_device
from optbench.messages import one_line
from optbench.optimizers.registry import IMPLS
from optbench.problems import PROBLEMS
from optbench.results import BENCHMARKS_DIR
from optbench.scenario import DTYPES, MAX_SEED
from optbench.schedules import SCHEDULES, WARMUP_FRACTION
from optbench.tune.grid import DEFAULT_GRID, parse_lr_grid

DEFAULT_SEEDS = 32
"""Seeds per learning rate of a sweep unless ``--tune-seeds`` says otherwise."""

MAX_SEEDS = 1024
"""The most seeds ``--optbench-seeds`` trains per scenario: 32 times what ``auto`` trains, more than any
comparison here needs, so that a slip such as ``--optbench-seeds 1000000`` stops at once instead of running
for days. ``MAX_SEED`` (from ``optbench.scenario``) is the largest seed a scenario may train."""

DEFAULT_TIMEOUT = 600.0
"""Seconds a scenario test may run, its timed rounds included, before it fails (``--optbench-timeout``):
the slowest default case takes a few seconds and the whole default matrix about 70."""

MAX_TIMEOUT = 7 * 24 * 3600.0
"""The longest ``--optbench-timeout``, a week: a longer one is no limit in practice (give 0 for none),
and far longer ones overflow the timers behind pytest-timeout."""

_T = TypeVar("_T", bound=Hashable)

AddOption = Callable[..., object]
"""A pytest option group's ``addoption`` or an argparse parser's ``add_argument``: they take the same
arguments, so one definition serves both front ends."""


def add_matrix_options(addoption: AddOption, prefix: str = "") -> None:
    """Adds the options that choose the problems, optimizers, batch sizes and dtypes of a matrix.

    Args:
        addoption: where the options go: ``parser.getgroup(...).addoption`` in the pytest
            plugin, ``ArgumentParser.add_argument`` in a command-line tool.
        prefix: put before each flag's name: ``"optbench-"`` in pytest (``--optbench-optimizers``,
            read back as ``optbench_optimizers``), nothing on the command line (``--optimizers``).
    """
    addoption(
        f"--{prefix}optimizers",
        type=parse_names,
        default=None,
        metavar="NAMES",
        help="comma-separated registry names (default: every registered optimizer)",
    )
    addoption(
        f"--{prefix}problems",
        type=parse_names,
        default=None,
        metavar="NAMES",
        help=f"comma-separated problems to train on (default: every registered one: {', '.join(PROBLEMS)})",
    )
    addoption(
        f"--{prefix}batch-sizes",
        type=parse_batch_sizes,
        default=None,
        metavar="SIZES",
        help="comma-separated batch sizes; one larger than a problem's data runs as its full batch (once), "
        "and a problem without data runs full batch alone (default: each problem's own; the "
        f"{PROBLEMS.default.name}'s are {','.join(map(str, PROBLEMS.default.batch_sizes))})",
    )
    addoption(
        f"--{prefix}dtypes",
        type=parse_dtypes,
        default=None,
        metavar="DTYPES",
        help=f"comma-separated dtypes from {','.join(DTYPES)} (default: float32 alone)",
    )


def add_schedule_option(addoption: AddOption, prefix: str = "") -> None:
    """Adds ``--schedules``: the learning-rate schedules to run each case under, as an axis.

    Args:
        addoption: as for ``add_matrix_options``.
        prefix: ``"optbench-"`` in pytest (``--optbench-schedules``), nothing on the command line.
    """
    addoption(
        f"--{prefix}schedules",
        type=parse_schedules,
        default=None,
        metavar="SCHEDULES",
        help=f"comma-separated learning-rate schedules from {','.join(SCHEDULES)}, stepped after every "
        f"optimizer step; warmup-cosine warms up over {WARMUP_FRACTION:.0%} of the steps (default: "
        "constant alone)",
    )


def add_tune_options(addoption: AddOption, prefix: str = "") -> None:
    """Adds the options of a learning-rate sweep: its grid and its seeds per point.

    Args:
        addoption: as for ``add_matrix_options``.
        prefix: ``"optbench-"`` in pytest (``--optbench-lr-grid``), nothing on the command line.
    """
    addoption(
        f"--{prefix}lr-grid",
        type=parse_lr_grid,
        default=DEFAULT_GRID,
        metavar="GRID",
        help="learning rates to sweep: comma-separated (0.001,0.01,0.1) or LOW:HIGH:PER_DECADE "
        f"(default 1e-4:1e2:2, {len(DEFAULT_GRID)} points)",
    )
    addoption(
        f"--{prefix}tune-seeds",
        type=parse_seeds,
        default=DEFAULT_SEEDS,
        metavar="K",
        help=f"seeds per learning rate, at most {MAX_SEEDS}; 'auto' takes as many as the default matrix "
        f"trains (default: {DEFAULT_SEEDS})",
    )


def add_storage_option(addoption: AddOption) -> None:
    """Adds ``--benchmarks-dir``: where the commands find saved runs by save number (``0003``)."""
    addoption(
        "--benchmarks-dir",
        type=Path,
        default=BENCHMARKS_DIR,
        metavar="DIR",
        help=f"where pytest-benchmark saves runs, a folder per machine (default {BENCHMARKS_DIR})",
    )


def check_names(names: Iterable[str] | None, known: Iterable[str], flag: str, what: str) -> None:
    """Raises ``ValueError`` with one line when ``flag`` names a ``what`` that is not ``known``.

    The names are checked once the table they choose from is built (the registry with its added
    optimizers, the problem table with its added problems), after the options are parsed.
    """
    choices = list(known)
    for name in names or ():
        if name not in choices:
            raise ValueError(f"{flag}: unknown {what} {_shown(name)}; choose from {', '.join(choices)}")


def _shown(value: object) -> str:
    """``value`` as an error message quotes it, cut to a readable length."""
    return one_line(repr(value), 80)


def _items(value: str) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {_shown(value)}")
    return items


def _once(values: Sequence[_T], what: str) -> tuple[_T, ...]:
    """``values`` as a tuple, refused when one of them is given twice (it would run, and be saved, twice)."""
    seen: set[_T] = set()
    for value in values:
        if value in seen:
            raise argparse.ArgumentTypeError(f"{what} {_shown(value)} is given twice; give each once")
        seen.add(value)
    return tuple(values)


def parse_names(value: str) -> tuple[str, ...]:
    """``"adam,sgd"`` -> ``("adam", "sgd")``; names are checked against the registry later."""
    return _once([item.lower() for item in _items(value)], "name")


def _at_least(text: str, minimum: int) -> int | None:
    """``text`` as an integer of at least ``minimum``, or ``None``."""
    try:
        number = int(text)
    except ValueError:
        return None
    return number if number >= minimum else None


def _past_int_limit(text: str) -> bool:
    """Whether ``text`` has more digits than ``int()`` reads (4300): a number far too large for any option."""
    return text.strip().isdecimal() and _at_least(text, 0) is None


def parse_batch_sizes(value: str) -> tuple[int, ...]:
    """``"1,10"`` -> ``(1, 10)``: positive integers.

    Each problem clamps them to its data's size afterwards (``Problem.batch_sizes_for``).
    """
    sizes = []
    for item in _items(value):
        size = _at_least(item, 1)
        if size is None:
            raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {_shown(item)}")
        sizes.append(size)
    return _once(sizes, "batch size")


def parse_devices(value: str) -> tuple[str, ...]:
    """``"cpu,cuda"`` -> ``("cpu", "cuda")``: names torch and optbench understand."""
    devices = _items(value)
    for device in devices:
        try:
            parse_device(device)
        except ValueError as error:
            raise argparse.ArgumentTypeError(one_line(str(error))) from None
    return _once(devices, "device")


def parse_seed(value: str) -> int:
    """A non-negative integer seed, at most ``MAX_SEED``."""
    seed = _at_least(value, 0)
    if seed is None and not _past_int_limit(value):
        raise argparse.ArgumentTypeError(f"the seed must be a non-negative integer, got {_shown(value)}")
    if seed is None or seed > MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"the seed must be at most {MAX_SEED} (2**63 - 1), got {_shown(value)}; give a smaller one"
        )
    return seed


def parse_seeds(value: str) -> int | None:
    """``"auto"`` -> ``None`` (the registry decides), else a positive number of seeds up to ``MAX_SEEDS``."""
    if value.strip().lower() == "auto":
        return None
    seeds = _at_least(value, 1)
    if seeds is None and not _past_int_limit(value):
        raise argparse.ArgumentTypeError(f"seeds must be 'auto' or a positive integer, got {_shown(value)}")
    if seeds is None or seeds > MAX_SEEDS:
        raise argparse.ArgumentTypeError(
            f"seeds must be at most {MAX_SEEDS} per scenario, got {_shown(value)}; give fewer"
        )
    return seeds


def parse_timeout(value: str) -> float:
    """Seconds a scenario test may run, from just above 0 to ``MAX_TIMEOUT``; ``0`` turns the limit off."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_TIMEOUT:  # NaN and infinities fail too
        raise argparse.ArgumentTypeError(
            f"the timeout must be seconds from 0 (no limit) to {MAX_TIMEOUT:g} (a week), got {_shown(value)}"
        )
    return seconds if seconds > 0 else 0.0


def _choices(value: str, allowed: Iterable[str], what: str) -> tuple[str, ...]:
    chosen = [item.lower() for item in _items(value)]
    allowed = tuple(allowed)
    for item in chosen:
        if item not in allowed:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {_shown(item)}; choose from {', '.join(allowed)}"
            )
    return _once(chosen, what)


def parse_impls(value: str) -> tuple[str, ...]:
    """``"forloop,foreach"`` -> ``("forloop", "foreach")``: names from ``IMPLS``."""
    return _choices(value, IMPLS, "implementation")


def parse_dtypes(value: str) -> tuple[str, ...]:
    """``"float32,bfloat16"`` -> ``("float32", "bfloat16")``: names from ``DTYPES``."""
    return _choices(value, DTYPES, "dtype")


def parse_schedules(value: str) -> tuple[str, ...]:
    """``"constant,cosine"`` -> ``("constant", "cosine")``: names from ``SCHEDULES``."""
    return _choices(value, SCHEDULES, "schedule")


def parse_shard(value: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: shard I of N, counting from 1."""
    index, slash, count = value.partition("/")
    try:
        shard = (int(index), int(count)) if slash else (0, 0)
    except ValueError:
        shard = (0, 0)
    if not 1 <= shard[0] <= shard[1]:
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N, such as 1/4, got {_shown(value)}")
    return shard
