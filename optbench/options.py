"""Options shared by the pytest plugin and the command-line tools: their definitions and parsers.

Each parser raises ``argparse.ArgumentTypeError`` with one sentence, so pytest and
argparse both report the flag and the bad value on one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path

from optbench.devices import parse_device
from optbench.optimizers.registry import IMPLS
from optbench.problems import PROBLEMS
from optbench.results import BENCHMARKS_DIR
from optbench.scenario import DTYPES

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
        help="comma-separated batch sizes (default: each problem's own; the "
        f"{PROBLEMS.default.name}'s are {','.join(map(str, PROBLEMS.default.batch_sizes))})",
    )
    addoption(
        f"--{prefix}dtypes",
        type=parse_dtypes,
        default=None,
        metavar="DTYPES",
        help=f"comma-separated dtypes from {','.join(DTYPES)} (default: float32 alone)",
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
            raise ValueError(f"{flag}: unknown {what} {name!r}; choose from {', '.join(choices)}")


def _items(value: str) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {value!r}")
    return items


def parse_names(value: str) -> tuple[str, ...]:
    """``"adam,sgd"`` -> ``("adam", "sgd")``; names are checked against the registry later."""
    return tuple(item.lower() for item in _items(value))


def _at_least(text: str, minimum: int) -> int | None:
    """``text`` as an integer of at least ``minimum``, or ``None``."""
    try:
        number = int(text)
    except ValueError:
        return None
    return number if number >= minimum else None


def parse_batch_sizes(value: str) -> tuple[int, ...]:
    """``"1,10"`` -> ``(1, 10)``: positive integers."""
    sizes = []
    for item in _items(value):
        size = _at_least(item, 1)
        if size is None:
            raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {item!r}")
        sizes.append(size)
    return tuple(sizes)


def parse_devices(value: str) -> tuple[str, ...]:
    """``"cpu,cuda"`` -> ``("cpu", "cuda")``: names torch and optbench understand."""
    devices = _items(value)
    for device in devices:
        try:
            parse_device(device)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return tuple(devices)


def parse_seed(value: str) -> int:
    """A non-negative integer seed."""
    seed = _at_least(value, 0)
    if seed is None:
        raise argparse.ArgumentTypeError(f"the seed must be a non-negative integer, got {value!r}")
    return seed


def parse_seeds(value: str) -> int | None:
    """``"auto"`` -> ``None`` (the registry decides), else a positive number of seeds."""
    if value.strip().lower() == "auto":
        return None
    seeds = _at_least(value, 1)
    if seeds is None:
        raise argparse.ArgumentTypeError(f"seeds must be 'auto' or a positive integer, got {value!r}")
    return seeds


def _choices(value: str, allowed: Iterable[str], what: str) -> tuple[str, ...]:
    chosen = tuple(item.lower() for item in _items(value))
    allowed = tuple(allowed)
    for item in chosen:
        if item not in allowed:
            raise argparse.ArgumentTypeError(f"unknown {what} {item!r}; choose from {', '.join(allowed)}")
    return chosen


def parse_impls(value: str) -> tuple[str, ...]:
    """``"forloop,foreach"`` -> ``("forloop", "foreach")``: names from ``IMPLS``."""
    return _choices(value, IMPLS, "implementation")


def parse_dtypes(value: str) -> tuple[str, ...]:
    """``"float32,bfloat16"`` -> ``("float32", "bfloat16")``: names from ``DTYPES``."""
    return _choices(value, DTYPES, "dtype")


def parse_shard(value: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: shard I of N, counting from 1."""
    index, slash, count = value.partition("/")
    try:
        shard = (int(index), int(count)) if slash else (0, 0)
    except ValueError:
        shard = (0, 0)
    if not 1 <= shard[0] <= shard[1]:
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N, such as 1/4, got {value!r}")
    return shard
