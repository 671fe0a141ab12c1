"""Hooks that a ``conftest.py`` or plugin can implement to extend the benchmark matrix."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from optbench.registry import OptimizerInfo


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
