"""The pytest plugin: ``--optbench-*`` options and the optimizer x batch size x device matrix.

Load it from a ``conftest.py`` with ``pytest_plugins = ("optbench.plugin",)``.
A test that asks for the ``scenario`` fixture runs once per combination, with
plain-string parameters ``optimizer``, ``batch_size`` and ``device``, and an id
such as ``adam-bs10-cpu``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from optbench import __version__, hookspecs
from optbench.devices import DEVICES, unavailable_reason
from optbench.engine import prepare, train
from optbench.options import parse_batch_sizes, parse_devices, parse_names, parse_seed, parse_seeds
from optbench.record import SCHEMA_VERSION, Record
from optbench.registry import AUTO_SEEDS, BATCH_SIZES, OPTIMIZERS, Registry
from optbench.results import ResultsError, read_baseline
from optbench.scenario import Scenario

REGISTRY_KEY = pytest.StashKey[Registry]()
BASELINE_KEY = pytest.StashKey["Mapping[str, Mapping[str, Any]] | None"]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Registers ``pytest_optbench_optimizers``."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Adds the ``--optbench-*`` options."""
    group = parser.getgroup("optbench", "optbench: the optimizer benchmark matrix")
    group.addoption(
        "--optbench-optimizers",
        type=parse_names,
        default=None,
        metavar="NAMES",
        help="comma-separated registry names to run (default: every registered optimizer)",
    )
    group.addoption(
        "--optbench-batch-sizes",
        type=parse_batch_sizes,
        default=BATCH_SIZES,
        metavar="SIZES",
        help=f"comma-separated batch sizes (default: {','.join(map(str, BATCH_SIZES))})",
    )
    group.addoption(
        "--optbench-devices",
        type=parse_devices,
        default=DEVICES,
        metavar="DEVICES",
        help=f"comma-separated devices; unavailable ones are skipped (default: {','.join(DEVICES)})",
    )
    group.addoption(
        "--optbench-baseline",
        type=Path,
        default=None,
        metavar="PATH",
        help="fail scenarios whose fit got worse than in this baseline (a saved run or baseline file)",
    )
    group.addoption(
        "--optbench-seed",
        type=parse_seed,
        default=0,
        metavar="SEED",
        help="seed of the data noise, the initialisation and the shuffle (default: 0)",
    )
    group.addoption(
        "--optbench-seeds",
        type=parse_seeds,
        default=None,
        metavar="K",
        help=f"seeds per scenario, from --optbench-seed on; 'auto' (default) trains {AUTO_SEEDS} for "
        "optimizers flagged elementwise, as one vectorised run, and 1 for the others",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Builds this run's registry and checks ``--optbench-optimizers`` against it."""
    extra = itertools.chain.from_iterable(config.hook.pytest_optbench_optimizers())
    try:
        registry = OPTIMIZERS.with_entries(extra, replace=True)
    except ValueError as error:
        raise pytest.UsageError(f"pytest_optbench_optimizers: {error}") from None
    for name in config.getoption("optbench_optimizers") or ():
        if name not in registry:
            raise pytest.UsageError(
                f"--optbench-optimizers: unknown optimizer {name!r}; choose from {', '.join(registry)}"
            )
    config.stash[REGISTRY_KEY] = registry
    baseline = config.getoption("optbench_baseline")
    try:
        config.stash[BASELINE_KEY] = read_baseline(baseline) if baseline is not None else None
    except ResultsError as error:
        raise pytest.UsageError(f"--optbench-baseline: {error}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrises tests that use the ``scenario`` fixture over the selected matrix."""
    if "scenario" not in metafunc.fixturenames:
        return
    config = metafunc.config
    registry = config.stash[REGISTRY_KEY]
    names = config.getoption("optbench_optimizers") or tuple(registry)
    cases = []
    for name, batch_size, device in itertools.product(
        names, config.getoption("optbench_batch_sizes"), config.getoption("optbench_devices")
    ):
        info = registry[name]
        marks = []
        reason = unavailable_reason(device)
        if reason is not None:
            marks.append(pytest.mark.skip(reason=reason))
        expected = info.expected_failure(batch_size)
        if expected is not None:
            marks.append(pytest.mark.xfail(reason=expected[0], strict=expected[1]))
        case_id = info.scenario(batch_size, device=device).id
        cases.append(pytest.param(name, batch_size, device, id=case_id, marks=marks))
    metafunc.parametrize(("optimizer", "batch_size", "device"), cases)


def provenance(devices: Sequence[str]) -> dict[str, object]:
    """What a saved run needs to say about the software and hardware it ran on."""
    uses_cuda = torch.cuda.is_available() and any(device.startswith("cuda") for device in devices)
    return {
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda or "",
        "cuda_device": torch.cuda.get_device_name(0) if uses_cuda else "",
        "torch_threads": torch.get_num_threads(),
        "default_dtype": str(torch.get_default_dtype()),
        "optbench_version": __version__,
    }


# pytest-benchmark's hooks; harmless when it is not loaded.
@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, object]) -> None:
    """Saves torch, CUDA, thread, dtype and optbench versions with every run."""
    machine_info.update(provenance(config.getoption("optbench_devices")))


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: object, output_json: dict) -> None:
    """Marks every saved run with the version of optbench's record layout."""
    output_json["optbench_schema"] = SCHEMA_VERSION


@pytest.fixture
def optbench_registry(request: pytest.FixtureRequest) -> Registry:
    """The registry for this run: the default one plus ``pytest_optbench_optimizers`` entries."""
    return request.config.stash[REGISTRY_KEY]


@pytest.fixture
def optbench_seed(request: pytest.FixtureRequest) -> int:
    """The ``--optbench-seed`` value."""
    return request.config.getoption("optbench_seed")


@pytest.fixture
def optbench_rounds(request: pytest.FixtureRequest) -> int:
    """Timed rounds per scenario: pytest-benchmark's ``--benchmark-min-rounds`` (default 5)."""
    return int(request.config.getoption("benchmark_min_rounds", 5))


@pytest.fixture
def optbench_seeds(request: pytest.FixtureRequest) -> int | None:
    """The ``--optbench-seeds`` value: a number of seeds, or ``None`` for ``auto``."""
    return request.config.getoption("optbench_seeds")


@pytest.fixture
def scenario(
    optimizer: str,
    batch_size: int,
    device: str,
    optbench_registry: Registry,
    optbench_seed: int,
    optbench_seeds: int | None,
) -> Scenario:
    """The registry's scenario for this test's ``optimizer``, ``batch_size`` and ``device``."""
    info = optbench_registry[optimizer]
    seeds = info.auto_seeds() if optbench_seeds is None else optbench_seeds
    return info.scenario(batch_size, device=device, seed=optbench_seed, seeds=seeds)


@pytest.fixture
def optbench_baseline(request: pytest.FixtureRequest) -> Mapping[str, Mapping[str, Any]] | None:
    """The ``--optbench-baseline`` records by scenario id, or ``None`` without the option."""
    return request.config.stash[BASELINE_KEY]


@pytest.fixture
def benchmark_training(
    benchmark: Any, optbench_rounds: int, request: pytest.FixtureRequest
) -> Callable[[Scenario], Record]:
    """Times training runs of a scenario with pytest-benchmark and returns the last record.

    Each round (and one warm-up) trains a fresh model with a fresh optimizer;
    building them is the untimed ``setup``. The record is stored in
    ``benchmark.extra_info`` before it is returned, so it is saved with the
    timings whatever the test asserts next, with ``expected_failure``: the
    reason of the test's xfail mark, or ``""``.
    """
    xfail = request.node.get_closest_marker("xfail")
    expected_failure = str(xfail.kwargs.get("reason", "")) if xfail is not None else ""

    def timed(scenario: Scenario) -> Record:
        record = benchmark.pedantic(
            train, setup=lambda: ((prepare(scenario),), {}), rounds=optbench_rounds, warmup_rounds=1
        )
        benchmark.extra_info.update(record, expected_failure=expected_failure)
        return record

    return timed
