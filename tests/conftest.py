import os

# MKL picks its matrix kernels by CPU: on an Intel CPU with AVX-512 a batched product (the replicas'
# gradients) and the same product alone round differently in the last bits, so the replica proofs
# (tests/test_replicas.py) would compare MKL's choice of kernel, not the optimizers' arithmetic. Its
# conditional-bitwise-reproducibility mode gives one result on every x86 CPU; MKL reads it at its first
# call, so it is set before any. A user's own MKL_CBWR stands; tests/test_line_unchanged.py runs the
# matrix without it, as a user does.
# OPTBENCH_SUITE_MKL_CBWR says the mode is the suite's (xdist's workers inherit both).
import pytest

# Optimizers import torch._dynamo lazily on their first step. pytester's in-process
# runs drop modules first imported inside them, and a second import of _dynamo
# fails (it registers a torch library twice), so import it once up front.
import torch._dynamo  # noqa: F401

pytest_plugins = ("pytester",)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """The suite's MKL mode, set before any test or collection calls MKL.

    Not under ``--pyargs``: ``python -m optbench`` run from the checkout's root loads this file too
    (pytest loads the ``test*/conftest.py`` files of the folder it runs in), and the matrix it runs
    keeps the user's MKL mode.
    """
    if "MKL_CBWR" not in os.environ and not config.option.pyargs:
        os.environ.update(MKL_CBWR="COMPATIBLE", OPTBENCH_SUITE_MKL_CBWR="1")


@pytest.fixture(autouse=True)
def _outside_xdist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under pytest-xdist (`pytest -n auto`), the benchmark runs these tests start must time
    and save as they do alone: pytest-benchmark turns itself off in any process that has
    PYTEST_XDIST_WORKER set, so it is unset for the test (the worker read it at start)."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


@pytest.fixture
def stop_the_second_write(monkeypatch: pytest.MonkeyPatch):
    """``stop(error)``: the second file optbench writes raises ``error`` instead, as a run stopped between
    two files by Ctrl-C, SIGTERM or a bug would."""
    from optbench import files

    def stop(error: BaseException) -> None:
        real, calls = files._write, []

        def second_stops(path, content):
            calls.append(path)
            if len(calls) == 2:
                raise error
            real(path, content)

        monkeypatch.setattr(files, "_write", second_stops)

    return stop


@pytest.fixture(autouse=True)
def _pytester_runs_the_line(request: pytest.FixtureRequest) -> None:
    """A pytester run trains the line unless its test names problems: the suite is tested by itself.

    The option comes from ``addopts``, so a test's own ``--optbench-problems`` replaces it.
    """
    if "pytester" in request.fixturenames:
        pytester = request.getfixturevalue("pytester")
        pytester.makefile(".ini", pytest="[pytest]\naddopts = --optbench-problems=line\n")


SMALL_MATRIX = '''
from optbench import assert_converged


def test_converges(benchmark_training, scenario):
    assert_converged(benchmark_training(scenario))
'''
"""A matrix module of one test: the scenario trained, timed and checked, as the packaged matrix does."""


@pytest.fixture
def small_matrix(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester folder whose conftest loads the plugin and whose one module is ``SMALL_MATRIX``."""
    pytester.makeconftest('pytest_plugins = ("optbench.plugin",)\n')
    pytester.makepyfile(test_matrix=SMALL_MATRIX)
    return pytester
