"""Hooks that a ``conftest.py`` or plugin can implement to extend the benchmark matrix."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from optbench.optimizers.registry import OptimizerInfo
from optbench.problems import Problem


@pytest.hookspec
def pytest_optbench_optimizers() -> Iterable[OptimizerInfo]:
    """Return optimizers to add to the registry for this run.

    An entry with the name of a default one replaces it (to retune it, say); two
    entries returned with the same name are a usage error.

    Implement it in the root ``conftest.py`` (or a plugin) so it is known before
    the command line is checked::

        def pytest_optbench_optimizers():
            return [OptimizerInfo("mysgd", None, MySGD, defaults={"lr": 0.01})]
    """


@pytest.hookspec
def pytest_optbench_problems() -> Iterable[Problem]:
    """Return problems to add to the problem table for this run (``optbench.problems``).

    They join the default matrix, whose ids then carry each problem's name, and
    ``--optbench-problems``. A name already in the table, or two entries with one
    name, is a usage error. Implement it in the root ``conftest.py`` (or a plugin)::

        def pytest_optbench_problems():
            return [dataclasses.replace(LINE, name="quiet", data=quiet_line)]

    The registry's tuned settings are keyed by problem, so an optimizer meets a new
    problem with its ``defaults`` alone; tune the ones you run on it with a case
    keyed on its name, from ``pytest_optbench_optimizers``::

        def pytest_optbench_optimizers():
            sgd = OPTIMIZERS["sgd"]
            return [dataclasses.replace(sgd, cases={**sgd.cases, ("quiet",): Case({"lr": 0.03})})]
    """
