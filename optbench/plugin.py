"""The pytest plugin: ``--optbench-*`` options and the optimizer x batch size x device matrix.

Load it from a ``conftest.py`` with ``pytest_plugins = ("optbench.plugin",)``.
A test that asks for the ``scenario`` fixture runs once per combination, with
plain parameters ``optimizer``, ``batch_size`` and ``device`` (and ``impl``,
``dtype`` and ``schedule`` when ``--optbench-impl``, ``--optbench-dtypes`` and
``--optbench-schedules`` are given), and an id such as ``adam-bs10-cpu``. Optimizers
from outside optbench join the registry before collection (``optbench.optimizers.specs``), their
elementwise claims proven (``optbench.optimizers.proof``); ``--optbench-shard`` deselects all but one
shard of the collected tests, and ``--optbench-timeout`` gives each scenario test a pytest-timeout
limit. With ``--optbench-tune`` each case runs at the learning rate a sweep chose for it
(``optbench.tune``), kept in pytest's cache. Whatever an added optimizer or problem raises is a
one-line usage error.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pytest
import torch

from optbench import __version__, hookspecs
from optbench.devices import DEVICES, unavailable_reason
from optbench.engine import fit, prepare, summarise
from optbench.files import OutputError, check_apart
from optbench.optimizers import proof, specs
from optbench.optimizers.registry import AUTO_SEEDS, OPTIMIZERS, OptimizerInfo, Registry
from optbench.options import (
    DEFAULT_TIMEOUT,
    MAX_SEED,
    MAX_SEEDS,
    MAX_TIMEOUT,
    add_matrix_options,
    add_schedule_option,
    add_tune_options,
    check_names,
    parse_devices,
    parse_impls,
    parse_seed,
    parse_seeds,
    parse_shard,
    parse_timeout,
)
from optbench.problems import PROBLEMS, Problem, Problems
from optbench.record import SCHEMA_VERSION, Record, check_metric_names
from optbench.results import ResultsError, read_baseline
from optbench.scenario import DTYPES, Scenario
from optbench.schedules import CONSTANT, SCHEDULES
from optbench.tune.choose import PASSING
from optbench.tune.settings import CaseRow, describe
from optbench.tune.sweep import LR, Job, NoLearningRateError, check_takes_lr, sweep_case

REGISTRY_KEY = pytest.StashKey[Registry]()
PROBLEMS_KEY = pytest.StashKey[Problems]()
BASELINE_KEY = pytest.StashKey["Mapping[str, Mapping[str, Any]] | None"]()
TIMEOUT_KEY = pytest.StashKey[float]()
"""On an item: the ``--optbench-timeout`` limit this plugin marked it with."""
TUNED_KEY = pytest.StashKey["dict[str, tuple[CaseRow, str]]"]()
"""On the config: this process's sweeps by cache key, each with where it came from."""

PROOFS_KEY = pytest.StashKey["dict[str, str]"]()
"""On the config: one line per added optimizer of the run, saying whether it was proven elementwise."""
ABSENT_KEY = pytest.StashKey["dict[str, int]"]()
"""On the config: the cases left out by the devices' reasons why this machine lacks them."""

TUNE_CACHE = "optbench/tune"
"""The folder of pytest's cache (``.pytest_cache/v/``) that holds the sweeps, one per cache key."""
TUNE_PROPERTY = "optbench_tune"
"""The name of the user property that carries a tuned case's summary line to the controller."""

_T = TypeVar("_T")
_PYTEST_TIMEOUT = re.compile(r"Timeout \(?>[0-9.]+s")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Registers ``pytest_optbench_optimizers``."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Adds the ``--optbench-*`` options."""
    group = parser.getgroup("optbench", "optbench: the optimizer benchmark matrix")
    add_matrix_options(group.addoption, prefix="optbench-")
    add_schedule_option(group.addoption, prefix="optbench-")
    group.addoption(
        "--optbench-optimizer",
        action="append",
        default=[],
        metavar="SPEC",
        help="add an optimizer to the matrix: NAME=module:Class, optionally followed by JSON keyword "
        """arguments, e.g. 'lion=lion_pytorch:Lion{"lr": 3e-4}' (repeatable)""",
    )
    group.addoption(
        "--optbench-devices",
        type=parse_devices,
        default=DEVICES,
        metavar="DEVICES",
        help=f"comma-separated devices; unavailable ones are skipped (default: {','.join(DEVICES)})",
    )
    group.addoption(
        "--optbench-impl",
        type=parse_impls,
        default=None,
        metavar="IMPLS",
        help="implementations as separate scenarios (<name>.<impl>), from forloop,foreach,fused, each "
        "where the optimizer has it on the device (default: torch's own choice, one scenario)",
    )
    group.addoption(
        "--optbench-shard",
        type=parse_shard,
        default=None,
        metavar="I/N",
        help="run only shard I of N: every N-th collected test from the I-th, the same split on "
        "every machine given the same options",
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
        help="seed of the data noise, the initialisation and the shuffle; a scenario's last seed "
        f"(SEED + K - 1) may be at most {MAX_SEED}, 2**63 - 1 (default: 0)",
    )
    group.addoption(
        "--optbench-seeds",
        type=parse_seeds,
        default=None,
        metavar="K",
        help=f"seeds per scenario, from --optbench-seed on, at most {MAX_SEEDS}; 'auto' (default) trains "
        f"{AUTO_SEEDS} where they run as one vectorised run (optimizers flagged elementwise, in float32 and "
        "float64), else 1",
    )
    group.addoption(
        "--optbench-timeout",
        type=parse_timeout,
        default=None,
        metavar="SECONDS",
        help="fail a scenario test that runs longer than SECONDS, its timed rounds included, through "
        f"pytest-timeout; 0 turns the limit off, at most {MAX_TIMEOUT:g}; pytest-timeout's own --timeout "
        f"or a test's timeout mark wins (default: {DEFAULT_TIMEOUT:g})",
    )
    group.addoption(
        "--optbench-tune",
        action="store_true",
        default=False,
        help="run each case at the learning rate a sweep chose (--optbench-lr-grid, --optbench-tune-seeds "
        "seeds per point), swept untimed before the benchmark and kept in pytest's cache; a case where "
        "no lr passes is an expected failure",
    )
    add_tune_options(group.addoption, prefix="optbench-")


REFERENCE = ("adam", "sgd")
"""What ``--optbench-optimizer`` runs beside the optimizers it adds, without ``--optbench-optimizers``:
the tutorial's two, so an added optimizer is set beside a known pair instead of the whole registry."""


def chosen_optimizers(config: pytest.Config, registry: Registry) -> tuple[str, ...]:
    """The names the matrix runs, in the registry's order.

    ``--optbench-optimizers`` where given; else, with ``--optbench-optimizer``, the optimizers it
    adds and ``REFERENCE``; else every registered optimizer.
    """
    given = config.getoption("optbench_optimizers")
    if given:
        return tuple(given)
    added = {specs.option_name(spec) for spec in config.getoption("optbench_optimizer")}
    if not added:
        return tuple(registry)
    return tuple(name for name in registry if name in added or name in REFERENCE)


def added_optimizers(config: pytest.Config) -> list[OptimizerInfo]:
    """Optimizers from outside optbench, each checked before any test runs.

    In order: installed packages' entry points, the project's
    ``[tool.optbench.optimizers]``, ``pytest_optbench_optimizers`` hooks, and
    ``--optbench-optimizer`` specs.

    Raises:
        pytest.UsageError: a bad spec, or anything an added optimizer's code raised while it
            was imported, built or checked, with one line naming where it came from.
    """
    pyproject = config.rootpath / "pyproject.toml"
    options = config.getoption("optbench_optimizer")
    return [
        *_one_line_errors(f"entry points ({specs.ENTRY_POINT_GROUP})", specs.from_entry_points),
        *_one_line_errors(str(pyproject), lambda: specs.from_pyproject(pyproject)),
        *_one_line_errors("pytest_optbench_optimizers", lambda: _hooked_optimizers(config)),
        *_one_line_errors("--optbench-optimizer", lambda: [specs.parse_option(spec) for spec in options]),
    ]


def _one_line_errors(where: str, produce: Callable[[], Iterable[_T]]) -> list[_T]:
    """What ``produce`` gives, read in full, with whatever it raised as a one-line usage error.

    Raises:
        pytest.UsageError: a ``SpecError``'s own line, or the type, message and place of any other
            error (``SystemExit`` too, not ``KeyboardInterrupt``) after ``where``.
    """
    try:
        return list(produce())
    except specs.SpecError as error:
        raise pytest.UsageError(specs.one_line(str(error))) from None
    except specs.USER_ERRORS as error:
        raise pytest.UsageError(
            specs.one_line(f"{where}: raised {specs.raised(error)}; fix the code named there")
        ) from None


def _hooked_optimizers(config: pytest.Config) -> list[OptimizerInfo]:
    """The ``pytest_optbench_optimizers`` hooks' entries, each an ``OptimizerInfo``."""
    found = list(itertools.chain.from_iterable(config.hook.pytest_optbench_optimizers()))
    for entry in found:
        if not isinstance(entry, OptimizerInfo):
            raise specs.SpecError(
                f"pytest_optbench_optimizers: returned {entry!r}, not an OptimizerInfo; "
                "return a list of optbench.OptimizerInfo entries"
            )
    return found


_SAVE_OPTIONS = {
    "benchmark_autosave": "--benchmark-autosave",
    "benchmark_save": "--benchmark-save",
    "benchmark_json": "--benchmark-json",
}


def _remove_the_empty_json_file(target: BinaryIO | os.PathLike | str | None) -> None:
    """Undoes what parsing ``--benchmark-json`` did to the disk, in either of its shapes.

    pytest-benchmark before 5.3 parses the option as an open file, so the file exists (empty) before any
    test runs; it is closed and, if still empty, removed. From 5.3 on the option is a ``Path`` and
    nothing has been written, so a file already at that path is the user's and is left alone.
    """
    if target is None or isinstance(target, (os.PathLike, str)):
        return
    target.close()
    path = Path(target.name)
    if path.is_file() and path.stat().st_size == 0:
        path.unlink()


def _refuse_saving_over(config: pytest.Config, baseline: Path | None) -> None:
    """``--benchmark-json`` may not name the ``--optbench-baseline`` file: the run would replace its input.

    pytest-benchmark before 5.3 opens (and empties) the file while parsing options, before this check.
    """
    target = config.getoption("benchmark_json", None)
    if baseline is None or target is None:
        return
    name = target if isinstance(target, (str, os.PathLike)) else getattr(target, "name", None)
    if not isinstance(name, (str, os.PathLike)):
        return
    try:
        check_apart(Path(name), [baseline], "save the run elsewhere")
    except OutputError as error:
        raise pytest.UsageError(f"--benchmark-json: {error}") from None


def _refuse_saving_under_xdist(config: pytest.Config) -> None:
    """pytest-benchmark turns itself off under xdist, so a run asked to save would save nothing."""
    if config.getoption("dist", "no") == "no":
        return
    asked = [flag for dest, flag in _SAVE_OPTIONS.items() if config.getoption(dest, None)]
    if asked:
        _remove_the_empty_json_file(config.getoption("benchmark_json", None))
        raise pytest.UsageError(
            f"{asked[0]} with pytest-xdist (-n): pytest-benchmark times nothing under xdist, so nothing "
            "would be saved; run the timed benchmarks without -n (convergence checks alone may use -n)"
        )


def _check_names(config: pytest.Config, option: str, what: str, known: Mapping[str, object]) -> None:
    """Stops the run with one line when ``--optbench-<option>`` names something ``known`` lacks."""
    try:
        check_names(config.getoption(f"optbench_{option}"), known, f"--optbench-{option}", what)
    except ValueError as error:
        raise pytest.UsageError(specs.one_line(str(error))) from None


def _check_seeds(config: pytest.Config) -> None:
    """Stops the run when a scenario's last seed would pass ``MAX_SEED`` (``auto``: ``AUTO_SEEDS`` seeds)."""
    seed, seeds = config.getoption("optbench_seed"), config.getoption("optbench_seeds")
    most = AUTO_SEEDS if seeds is None else seeds
    if seed + most - 1 > MAX_SEED:
        counted = f"--optbench-seeds {seeds}" if seeds is not None else f"up to {AUTO_SEEDS} seeds (auto)"
        raise pytest.UsageError(
            f"--optbench-seed {seed} with {counted} trains seeds up to {seed + most - 1}, past the largest "
            f"seed {MAX_SEED} (2**63 - 1); give --optbench-seed {MAX_SEED - most + 1} or less"
        )


def _check_tuning(config: pytest.Config, registry: Registry) -> None:
    """With ``--optbench-tune``: stops the run when a selected optimizer takes no ``lr``.

    It also stops when a sweep's last seed would pass ``MAX_SEED`` (``auto``: ``AUTO_SEEDS`` seeds).
    """
    if not config.getoption("optbench_tune"):
        return
    seed, seeds = config.getoption("optbench_seed"), config.getoption("optbench_tune_seeds")
    most = AUTO_SEEDS if seeds is None else seeds
    if seed + most - 1 > MAX_SEED:
        auto = f"up to {AUTO_SEEDS} seeds (auto)"
        counted = f"--optbench-tune-seeds {seeds}" if seeds is not None else auto
        raise pytest.UsageError(
            f"--optbench-seed {seed} with {counted} sweeps seeds up to {seed + most - 1}, past the largest "
            f"seed {MAX_SEED} (2**63 - 1); give --optbench-seed {MAX_SEED - most + 1} or less"
        )
    for name in chosen_optimizers(config, registry):
        try:
            check_takes_lr(registry[name])
        except NoLearningRateError as error:
            raise pytest.UsageError(specs.one_line(f"--optbench-tune: {error}")) from None
        except specs.USER_ERRORS as error:  # the optimizer's own constructor failed, built with an lr
            raise pytest.UsageError(
                specs.one_line(
                    f"--optbench-tune: building {name} with an lr raised {specs.raised(error)}; fix the code "
                    "named there"
                )
            ) from None


def _timeout(config: pytest.Config) -> float:
    """The ``--optbench-timeout`` limit, its default where it was not given."""
    seconds = config.getoption("optbench_timeout")
    return DEFAULT_TIMEOUT if seconds is None else seconds


def _proof_seconds(config: pytest.Config) -> float:
    """How long an added optimizer's elementwise proof may take.

    ``proof.PROOF_SECONDS``, or less where ``--optbench-timeout`` or pytest-timeout's ``--timeout``
    gives a test less.
    """
    limits = [proof.PROOF_SECONDS, config.getoption("optbench_timeout") or 0]
    users = config.getoption("timeout", None)
    limits.append(users if isinstance(users, (int, float)) else 0)
    return min(limit for limit in limits if limit > 0)


def _users_timeout(config: pytest.Config) -> bool:
    """Whether pytest-timeout was given a limit of its own: ``--timeout``, ``PYTEST_TIMEOUT`` or ini."""
    return (
        config.getoption("timeout", None) is not None
        or bool(os.environ.get("PYTEST_TIMEOUT"))
        or bool(config.getini("timeout"))
    )


def _check_timeout(config: pytest.Config) -> None:
    """Stops the run when ``--optbench-timeout`` is given but pytest-timeout, which applies it, is off."""
    given = config.getoption("optbench_timeout")
    if given and not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError(
            "--optbench-timeout: pytest-timeout, which applies it, is not loaded (-p no:timeout?); "
            "install or enable pytest-timeout, or drop --optbench-timeout"
        )


def pytest_configure(config: pytest.Config) -> None:
    """Builds this run's registry and problem table and checks the names chosen from them."""
    _refuse_saving_under_xdist(config)
    added = added_optimizers(config)
    try:
        registry = OPTIMIZERS.with_entries(added, replace=True)
    except ValueError as error:
        raise pytest.UsageError(
            specs.one_line(f"added optimizers: {error}; give each a name of its own")
        ) from None
    _check_names(config, "optimizers", "optimizer", registry)
    chosen = set(chosen_optimizers(config, registry))
    try:
        registry, config.stash[PROOFS_KEY] = proof.prove_added(
            registry, [info.name for info in added if info.name in chosen], _proof_seconds(config)
        )
    except specs.SpecError as error:
        raise pytest.UsageError(specs.one_line(str(error))) from None
    config.stash[REGISTRY_KEY] = registry
    added = _one_line_errors(
        "pytest_optbench_problems",
        lambda: itertools.chain.from_iterable(config.hook.pytest_optbench_problems()),
    )
    try:
        problems = PROBLEMS.with_entries(added)
    except ValueError as error:
        raise pytest.UsageError(specs.one_line(f"pytest_optbench_problems: {error}")) from None
    for name, problem in problems.items():
        for axis, names in (("dtype", DTYPES), ("schedule", SCHEDULES)):
            if name in names:  # its ids would read as the line's in that dtype or on that schedule
                raise pytest.UsageError(
                    specs.one_line(
                        f"pytest_optbench_problems: problem name {name!r} is a {axis}'s; give the problem "
                        "another"
                    )
                )
        try:
            check_metric_names(problem.metrics)
        except Exception as error:  # a metric table of the wrong shape fails in its own way
            raise pytest.UsageError(
                specs.one_line(f"pytest_optbench_problems: problem {name!r}: {error}")
            ) from None
    _check_names(config, "problems", "problem", problems)
    _check_seeds(config)
    _check_tuning(config, registry)
    _check_timeout(config)
    config.stash[PROBLEMS_KEY] = problems
    if config.getoption("optbench_tune"):
        config.pluginmanager.register(TuneSummary(), "optbench-tune-summary")
    baseline = config.getoption("optbench_baseline")
    _refuse_saving_over(config, baseline)
    try:
        config.stash[BASELINE_KEY] = read_baseline(baseline) if baseline is not None else None
    except ResultsError as error:
        raise pytest.UsageError(f"--optbench-baseline: {error}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrises tests that use the ``scenario`` fixture over the selected matrix.

    ``impl`` and ``dtype`` become parameters only when ``--optbench-impl`` and
    ``--optbench-dtypes`` are given, and ``problem`` only when ``--optbench-problems``
    is given or more than one problem is registered, so the default matrix keeps
    its ids and parameters.
    """
    if "scenario" not in metafunc.fixturenames:
        return
    config = metafunc.config
    registry = config.stash[REGISTRY_KEY]
    names = chosen_optimizers(config, registry)
    impls = config.getoption("optbench_impl")
    dtypes = config.getoption("optbench_dtypes")
    schedules = config.getoption("optbench_schedules")
    table = config.stash[PROBLEMS_KEY]
    chosen = config.getoption("optbench_problems")
    problems = [table[name] for name in chosen or table]
    # The default alone (no option, one problem; or --optbench-problems naming it alone) is the
    # matrix as it was before problems: the `problem` fixture gives it, and it is no parameter.
    crossed = len(problems) > 1 or problems[0] is not table.default
    cases = []
    for problem in problems:
        cases += _cases(config, registry, names, problem, crossed, impls, dtypes, schedules)
    arguments = (
        (["problem"] if crossed else [])
        + ["optimizer", "batch_size", "device"]
        + (["impl"] if impls else [])
        + (["dtype"] if dtypes else [])
        + (["schedule"] if schedules else [])
    )
    metafunc.parametrize(arguments, cases)


def _cases(
    config: pytest.Config,
    registry: Registry,
    names: Sequence[str],
    problem: Problem,
    crossed: bool,
    impls: Sequence[str] | None,
    dtypes: Sequence[str] | None,
    schedules: Sequence[str] | None,
) -> list[Any]:
    """The matrix's cases on one problem, with their marks; ``crossed``: the problem is a parameter.

    The batch sizes are ``Problem.batch_sizes_for``'s: clamped to the data's size, repeats once, and
    one full batch for a problem without data. A case on a schedule other than constant trains at the
    lr chosen for the constant one, so without ``--optbench-tune`` it is a non-strict expected failure
    (``UNSCHEDULED``): timed and reported, never judged.
    """
    # Under --optbench-tune the sweep's verdict (the scenario fixture's mark) replaces the registry's
    # expected failures, which were measured at its own hand-picked settings.
    tuned = config.getoption("optbench_tune")
    cases = []
    for name, batch_size, device, impl, dtype, schedule in itertools.product(
        names,
        problem.batch_sizes_for(config.getoption("optbench_batch_sizes")),
        config.getoption("optbench_devices"),
        impls or ("",),
        dtypes or ("float32",),
        schedules or (CONSTANT,),
    ):
        info = registry[name]
        marks = []
        reason = unavailable_reason(device)
        if reason is not None:
            marks.append(pytest.mark.skip(reason=reason))
        if impl and impl not in info.impls(device):
            marks.append(pytest.mark.skip(reason=f"{name} has no {impl} implementation on {device}"))
        expected = None if tuned else info.expected_failure(batch_size, problem=problem, dtype=dtype)
        if not tuned and schedule != CONSTANT:  # the registry's verdicts hold at the constant one alone
            there = f" (there: {expected[0]})" if expected is not None else ""
            expected = (
                f"{UNSCHEDULED}: it trains at the constant schedule's lr{there}; --optbench-tune tunes it",
                False,
            )
        if expected is not None:
            marks.append(pytest.mark.xfail(reason=expected[0], strict=expected[1]))
        case_id = info.scenario(
            batch_size, device=device, impl=impl, dtype=dtype, problem=problem, schedule=schedule
        ).id
        values = (
            [name, batch_size, device]
            + ([impl] if impls else [])
            + ([dtype] if dtypes else [])
            + ([schedule] if schedules else [])
        )
        values = [problem.name, *values] if crossed else values
        cases.append(pytest.param(*values, id=case_id, marks=marks))
    return cases


UNSCHEDULED = "this schedule was neither tuned nor calibrated"
"""The start of the reason of a case on a schedule other than constant, without ``--optbench-tune``."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks the scenario tests' time limit, keeps a shard's tests, and leaves out absent devices.

    With ``--optbench-shard I/N``, the shard's tests are every N-th collected one from the I-th;
    the rest are deselected. Then the cases on devices this machine lacks are deselected too
    (after the shard, so every machine cuts the same shards), and the terminal summary says so
    in one line, unless that would leave no test: then they stay, each skipped with its reason.
    """
    _mark_timeouts(config, items)
    shard = config.getoption("optbench_shard")
    if shard is not None:
        index, count = shard
        kept = [item for position, item in enumerate(items) if position % count == index - 1]
        dropped = [item for position, item in enumerate(items) if position % count != index - 1]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    reasons = {item: _absent_reason(item) for item in items}
    absent = [item for item in items if reasons[item] is not None]
    if absent and len(absent) < len(items):
        config.hook.pytest_deselected(items=absent)
        items[:] = [item for item in items if reasons[item] is None]
        config.stash[ABSENT_KEY] = dict(Counter(str(reasons[item]) for item in absent))


def _absent_reason(item: pytest.Item) -> str | None:
    """Why the device of a matrix case is absent here, or ``None`` (present, or not a case)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    device = params.get("device") if "scenario" in getattr(item, "fixturenames", ()) else None
    return unavailable_reason(device) if isinstance(device, str) else None


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Whether each added optimizer of the run was proven elementwise, so its seeds run as replicas."""
    return [f"optbench: {line}" for line in config.stash.get(PROOFS_KEY, {}).values()]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line for the cases left out on devices this machine lacks, instead of a skip each."""
    counted = config.stash.get(ABSENT_KEY, {})
    if counted:
        total = sum(counted.values())
        why = "; ".join(f"{count} for {reason}" for reason, count in counted.items())
        terminalreporter.write_line(
            f"optbench: left out {total} case(s) on devices this machine lacks ({why}); "
            "--optbench-devices names the devices to run"
        )


def _mark_timeouts(config: pytest.Config, items: Sequence[pytest.Item]) -> None:
    """Gives each test that uses the ``scenario`` fixture a ``timeout`` mark of ``--optbench-timeout``.

    A test's own ``timeout`` mark, and a limit given to pytest-timeout itself (``--timeout``,
    ``PYTEST_TIMEOUT``, the ``timeout`` ini value), win; without pytest-timeout nothing is marked.
    """
    seconds = _timeout(config)
    if not seconds or not config.pluginmanager.hasplugin("timeout") or _users_timeout(config):
        return
    for item in items:
        if "scenario" in getattr(item, "fixturenames", ()) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(seconds))
            item.stash[TIMEOUT_KEY] = seconds


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Names the scenario that ran past ``--optbench-timeout``, and the fix, when pytest-timeout stops it."""
    try:
        return (yield)
    except pytest.fail.Exception as error:
        seconds = item.stash.get(TIMEOUT_KEY, None)
        said = str(error)
        # pytest-timeout says "Timeout >2.0s" up to 2.3, "Timeout (>2.0s) from pytest-timeout." since.
        if seconds is None or not _PYTEST_TIMEOUT.match(said):
            raise
        callspec = getattr(item, "callspec", None)
        case = callspec.id if callspec is not None else item.name
        said = said.rstrip(".")
        message = (
            f"{case} ran past --optbench-timeout {seconds:g} s, its timed rounds included ({said}); "
            "give a longer limit, or 0 for none"
        )
        raise pytest.fail.Exception(message).with_traceback(error.__traceback__) from None


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
        # MKL rounds by the kernels it picks for the CPU unless told otherwise: part of what a
        # bit-for-bit comparison needs equal (tests/test_line_unchanged.py).
        "mkl_cbwr": os.environ.get("MKL_CBWR", ""),
    }


# pytest-benchmark's hooks; harmless when it is not loaded.
@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, object]) -> None:
    """Saves torch, CUDA, thread, dtype, CPU, MKL mode and optbench versions with every run."""
    machine_info.update(provenance(config.getoption("optbench_devices")))
    cpu = machine_info.get("cpu")
    machine_info["cpu_brand"] = str(cpu.get("brand_raw", "")) if isinstance(cpu, dict) else ""


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


DEFAULT_ROUNDS = 5
"""pytest-benchmark's default ``--benchmark-min-rounds``: where it is left so, each problem's
``rounds`` apply."""


@pytest.fixture
def optbench_rounds(request: pytest.FixtureRequest) -> Callable[[Problem], int]:
    """Timed rounds per scenario on a problem: its ``rounds``, or ``--benchmark-min-rounds``.

    A ``--benchmark-min-rounds`` other than its default 5 applies to every problem; left at 5, a
    problem with ``rounds`` (the suite's) times that many, the others 5.
    """
    given = int(request.config.getoption("benchmark_min_rounds", DEFAULT_ROUNDS))

    def rounds(problem: Problem) -> int:
        return problem.rounds if given == DEFAULT_ROUNDS and problem.rounds is not None else given

    return rounds


@pytest.fixture
def optbench_seeds(request: pytest.FixtureRequest) -> int | None:
    """The ``--optbench-seeds`` value: a number of seeds, or ``None`` for ``auto``."""
    return request.config.getoption("optbench_seeds")


@pytest.fixture
def impl() -> str:
    """The implementation of this case; ``""`` (torch's default) unless ``--optbench-impl`` is given."""
    return ""


@pytest.fixture
def problem() -> str:
    """This case's problem: the default (the line) unless problems are added or picked."""
    return PROBLEMS.default.name


@pytest.fixture
def optbench_problems(request: pytest.FixtureRequest) -> Problems:
    """The problem table for this run: ``PROBLEMS`` plus ``pytest_optbench_problems`` entries."""
    return request.config.stash[PROBLEMS_KEY]


@pytest.fixture
def dtype() -> str:
    """The dtype of this case; ``float32`` unless ``--optbench-dtypes`` is given."""
    return "float32"


@pytest.fixture
def schedule() -> str:
    """The learning-rate schedule of this case; ``constant`` unless ``--optbench-schedules`` is given."""
    return CONSTANT


@pytest.fixture
def scenario(
    problem: str,
    optimizer: str,
    batch_size: int,
    device: str,
    impl: str,
    dtype: str,
    schedule: str,
    optbench_registry: Registry,
    optbench_problems: Problems,
    optbench_seed: int,
    optbench_seeds: int | None,
    request: pytest.FixtureRequest,
) -> Scenario:
    """The registry's scenario for this case (problem, optimizer, batch size, device, impl, dtype, schedule).

    With ``--optbench-tune`` its ``lr`` is the one the case's sweep chose (``tuned_scenario``).
    """
    info = optbench_registry[optimizer]
    seeds = info.auto_seeds(dtype) if optbench_seeds is None else optbench_seeds
    found = info.scenario(
        batch_size,
        device=device,
        seed=optbench_seed,
        seeds=seeds,
        impl=impl,
        dtype=dtype,
        problem=optbench_problems[problem],
        schedule=schedule,
    )
    if not request.config.getoption("optbench_tune"):
        return found
    return tuned_scenario(request, info, found)


def tuned_scenario(request: pytest.FixtureRequest, info: OptimizerInfo, scenario: Scenario) -> Scenario:
    """``scenario`` at the learning rate its case's sweep chose, swept (untimed) unless cached.

    The sweep is the case's in torch's default implementation, on the scenario's device, over
    ``--optbench-lr-grid`` with ``--optbench-tune-seeds`` seeds per point from ``--optbench-seed``.
    Where no learning rate passes, the test gets a non-strict ``xfail`` mark saying so. The case's
    summary line goes to the controller (under pytest-xdist too) as a user property of the test.
    """
    config = request.config
    job = Job(
        info,
        scenario.problem,
        scenario.batch_size,
        scenario.dtype,
        scenario.device,
        grid=config.getoption("optbench_lr_grid"),
        seeds=config.getoption("optbench_tune_seeds"),
        seed=scenario.seed,
        schedule=scenario.schedule,
    )
    row, source = tuned_case(config, job)
    request.node.user_properties.append((TUNE_PROPERTY, [job.cache_key(), f"{describe(row)} ({source})"]))
    if row.window is None:
        request.applymarker(pytest.mark.xfail(reason=no_lr_passed(row), strict=False))
    hyperparams = {**dict(scenario.hyperparams), LR: row.lr}
    return replace(
        scenario,
        optimizer=partial(info.factory, **hyperparams),
        hyperparams=tuple(sorted(hyperparams.items())),
    )


def no_lr_passed(row: CaseRow) -> str:
    """The expected-failure reason of a case whose sweep found no passing learning rate."""
    grid = f"{len(row.grid)} from {row.grid[0]:g} to {row.grid[-1]:g}" if len(row.grid) > 1 else f"{row.lr:g}"
    return (
        f"tuned: no lr on the grid ({grid}) passed on {PASSING:g} of {row.seeds} seeds; "
        f"best pass rate {row.pass_rate:.2f} at lr {row.lr:g}"
    )


def tuned_case(config: pytest.Config, job: Job) -> tuple[CaseRow, str]:
    """``job``'s sweep: from earlier in this process, from pytest's cache, or swept now and cached.

    The cache holds each sweep under ``optbench/tune/<job.cache_key()>``; an entry that is not a valid
    ``CaseRow`` of this job is swept again and replaced. Without the cache provider
    (``-p no:cacheprovider``) each process sweeps every case once.

    Returns:
        The case, named as ``job``'s optimizer, and where it came from (``"cached"``, ``"swept now"``).
    """
    key = job.cache_key()
    done = config.stash.setdefault(TUNED_KEY, {})
    if key not in done:
        cache: pytest.Cache | None = getattr(config, "cache", None)
        path = f"{TUNE_CACHE}/{key}"
        row = _from_cache(cache.get(path, None), job) if cache is not None else None
        if row is not None:
            done[key] = (row, "cached")
        else:
            row = sweep_case(job)
            if cache is not None:
                cache.set(path, json.loads(row.model_dump_json()))
            done[key] = (row, "swept now" if cache is not None else "swept now, not cached: no cacheprovider")
    row, source = done[key]
    if row.optimizer != job.info.name:  # another name for the same class and arguments
        row = row.model_copy(update={"optimizer": job.info.name})
    return row, source


def _from_cache(value: object, job: Job) -> CaseRow | None:
    """The cached ``value`` as ``job``'s sweep, or ``None`` where it is missing, invalid or another case's."""
    if value is None:
        return None
    try:
        row = CaseRow.model_validate_json(json.dumps(value))
    except (ValueError, TypeError, RecursionError):  # pydantic's ValidationError is a ValueError
        return None
    base = job.base()
    expected = (
        job.problem.name, job.batch_size, job.dtype, job.schedule, job.device, list(job.grid), base.seeds
    )  # fmt: skip
    found = (row.problem, row.batch_size, row.dtype, row.schedule, row.device, row.grid, row.seeds)
    return row if found == expected and row.epochs == base.epochs else None


class TuneSummary:
    """With ``--optbench-tune``: collects each tuned case's line and prints them after the run."""

    def __init__(self) -> None:
        self.lines: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keeps the first line each sweep (by its cache key) is reported with, from any xdist worker."""
        for name, value in report.user_properties:
            if name == TUNE_PROPERTY and isinstance(value, (list, tuple)) and len(value) == 2:
                self.lines.setdefault(str(value[0]), str(value[1]))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Prints the "optbench tune" section: one line per tuned case."""
        if not self.lines:
            return
        terminalreporter.write_sep("=", "optbench tune")
        for line in self.lines.values():
            terminalreporter.write_line(line)


@pytest.fixture
def optbench_baseline(request: pytest.FixtureRequest) -> Mapping[str, Mapping[str, Any]] | None:
    """The ``--optbench-baseline`` records by scenario id, or ``None`` without the option."""
    return request.config.stash[BASELINE_KEY]


@pytest.fixture
def benchmark_training(
    benchmark: Any, optbench_rounds: Callable[[Problem], int], request: pytest.FixtureRequest
) -> Callable[[Scenario], Record]:
    """Times training runs of a scenario with pytest-benchmark and returns the last record.

    Each round (and one warm-up) trains a fresh model with a fresh optimizer;
    building them is the untimed ``setup``, and so is building the record from
    the last round (``summarise``). The record is stored in
    ``benchmark.extra_info`` before it is returned, so it is saved with the
    timings whatever the test asserts next, with ``expected_failure``: the
    reason of the test's xfail mark, or ``""``, read when it is called (so a
    mark that a fixture set up after this one, as ``--optbench-tune``'s, counts).
    """

    def timed(scenario: Scenario) -> Record:
        rounds = optbench_rounds(scenario.problem)
        fitted = benchmark.pedantic(
            fit, setup=lambda: ((prepare(scenario),), {}), rounds=rounds, warmup_rounds=1
        )
        record = summarise(fitted)
        xfail = request.node.get_closest_marker("xfail")
        expected_failure = str(xfail.kwargs.get("reason", "")) if xfail is not None else ""
        benchmark.extra_info.update(record, expected_failure=expected_failure)
        return record

    return timed
