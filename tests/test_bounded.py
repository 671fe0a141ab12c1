"""Bounded input and time: values given twice, seeds past torch's range, and scenarios that never end."""

import argparse
from pathlib import Path

import pytest
import torch

from optbench import OPTIMIZERS, Scenario
from optbench.options import (
    DEFAULT_TIMEOUT,
    MAX_SEED,
    MAX_SEEDS,
    MAX_TIMEOUT,
    add_matrix_options,
    parse_batch_sizes,
    parse_devices,
    parse_dtypes,
    parse_impls,
    parse_names,
    parse_seed,
    parse_seeds,
    parse_timeout,
)

ROOT = Path(__file__).resolve().parents[1]
MATRIX = (ROOT / "optbench" / "benchmarks" / "test_matrix.py").read_text()
CONFTEST = 'pytest_plugins = ("optbench.plugin",)\n'
CPU = ("--optbench-devices=cpu", "-p", "no:cacheprovider")

SPIN = """
import time

import torch
import torch._dynamo  # optimizers import it on their first step: seconds, not to be timed here

from optbench import OptimizerInfo

pytest_plugins = ("optbench.plugin",)


class Spin(torch.optim.SGD):
    def step(self, closure=None):
        while True:  # a step that never returns
            time.sleep(0.01)


def pytest_optbench_optimizers():
    return [OptimizerInfo("spin", None, Spin, defaults={"lr": 0.1})]
"""


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        (parse_batch_sizes, "100,10,100", "batch size 100 is given twice; give each once"),
        (parse_batch_sizes, "100,0100", "batch size 100 is given twice; give each once"),
        (parse_devices, "cpu,cpu", "device 'cpu' is given twice; give each once"),
        (parse_names, "adam, ADAM", "name 'adam' is given twice; give each once"),
        (parse_dtypes, "float32,float64,float32", "dtype 'float32' is given twice; give each once"),
        (parse_impls, "foreach,Foreach", "implementation 'foreach' is given twice; give each once"),
    ],
)
def test_a_value_given_twice_is_refused(parse, value, message):
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        parse(value)
    assert str(raised.value) == message


def test_lists_of_distinct_values_still_parse():
    assert parse_batch_sizes("1,10") == (1, 10) and parse_devices("cpu,cuda:0,cuda:1") == (
        "cpu",
        "cuda:0",
        "cuda:1",
    )
    assert parse_names("adam,sgd") == ("adam", "sgd") and parse_impls("forloop,fused") == ("forloop", "fused")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--optbench-batch-sizes=100,100", "batch size 100 is given twice; give each once"),
        ("--optbench-devices=cpu,cpu", "device 'cpu' is given twice; give each once"),
        ("--optbench-optimizers=adam,adam", "name 'adam' is given twice; give each once"),
        ("--optbench-problems=line,line", "name 'line' is given twice; give each once"),
    ],
)
def test_a_value_given_twice_on_the_command_line_is_a_usage_error(pytester, option, message):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_matrix=MATRIX)
    result = pytester.runpytest(option, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*: error: argument {option.split('=')[0]}: {message}"])


def test_a_value_given_twice_to_a_command_line_tool_exits_2(capsys):
    parser = argparse.ArgumentParser(prog="tool")
    add_matrix_options(parser.add_argument)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--batch-sizes", "1,1"])
    assert exited.value.code == 2
    assert (
        "tool: error: argument --batch-sizes: batch size 1 is given twice; give each once"
        in capsys.readouterr().err
    )


def test_torch_takes_every_seed_a_scenario_may_use_and_no_more():
    """The engine seeds a model with 2 * seed + 1 and its data with the seed; torch takes 0 to 2**64 - 1."""
    torch.manual_seed(2 * MAX_SEED + 1)
    torch.Generator().manual_seed(2 * MAX_SEED + 1)
    with pytest.raises((RuntimeError, ValueError, OverflowError)):
        torch.manual_seed(2 * (MAX_SEED + 1) + 1)
    torch.manual_seed(0)


def test_seeds_are_bounded_when_parsed():
    assert parse_seed(str(MAX_SEED)) == MAX_SEED and parse_seeds(str(MAX_SEEDS)) == MAX_SEEDS
    for value in (str(MAX_SEED + 1), "100000000000000000000000", "9" * 5000):
        with pytest.raises(
            argparse.ArgumentTypeError, match=rf"^the seed must be at most {MAX_SEED} \(2\*\*63 - 1\)"
        ):
            parse_seed(value)
    for value in (str(MAX_SEEDS + 1), "9" * 5000):
        with pytest.raises(
            argparse.ArgumentTypeError, match=rf"^seeds must be at most {MAX_SEEDS} per scenario"
        ):
            parse_seeds(value)
    with pytest.raises(argparse.ArgumentTypeError, match=r"non-negative integer, got '-1'$"):
        parse_seed("-1")
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        parse_seed("9" * 5000)
    assert len(str(raised.value)) < 200  # the value is cut, not quoted whole


def test_a_scenario_refuses_seeds_torch_cannot_take():
    sgd = OPTIMIZERS["sgd"]
    assert sgd.scenario(100, seed=MAX_SEED).seed == MAX_SEED
    with pytest.raises(
        ValueError, match=r"^scenario seeds 9223372036854775807 to 9223372036854775808 go past"
    ):
        sgd.scenario(100, seed=MAX_SEED, seeds=2)
    with pytest.raises(ValueError, match=r"^scenario seed must be a non-negative integer, got -1$"):
        Scenario("x", torch.optim.SGD, 1, seed=-1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            (f"--optbench-seed={MAX_SEED}",),
            f"ERROR: --optbench-seed {MAX_SEED} with up to 32 seeds (auto) trains seeds up to "
            f"{MAX_SEED + 31}, past the largest seed {MAX_SEED} (2**63 - 1); give --optbench-seed "
            f"{MAX_SEED - 31} or less",
        ),
        (
            (f"--optbench-seed={MAX_SEED - 5}", "--optbench-seeds=7"),
            f"ERROR: --optbench-seed {MAX_SEED - 5} with --optbench-seeds 7 trains seeds up to "
            f"{MAX_SEED + 1}*",
        ),
        (
            ("--optbench-seed=100000000000000000000000",),
            f"*error: argument --optbench-seed: the seed must be at most {MAX_SEED} (2[*][*]63 - 1), got "
            "'100000000000000000000000'; give a smaller one",
        ),
        (
            ("--optbench-seeds=1025",),
            "*error: argument --optbench-seeds: seeds must be at most 1024 per scenario*",
        ),
    ],
)
def test_seeds_past_the_largest_are_usage_errors(pytester, options, message):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_matrix=MATRIX)
    result = pytester.runpytest(*options, *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "test_converges" not in result.stdout.str()


def test_the_largest_seed_trains(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_matrix=MATRIX)
    result = pytester.runpytest(
        f"--optbench-seed={MAX_SEED}",
        "--optbench-seeds=1",
        "--optbench-optimizers=sgd",
        "--optbench-batch-sizes=100",
        "--benchmark-disable",
        *CPU,
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("600", 600.0), ("0.5", 0.5), ("0", 0.0), ("-0", 0.0), (str(MAX_TIMEOUT), MAX_TIMEOUT)],
)
def test_a_timeout_is_seconds_or_0_for_none(value, seconds):
    assert parse_timeout(value) == seconds


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e400", "soon", str(MAX_TIMEOUT + 1)])
def test_a_bad_timeout_is_refused(value):
    with pytest.raises(
        argparse.ArgumentTypeError, match=r"^the timeout must be seconds from 0 \(no limit\) to 604800"
    ):
        parse_timeout(value)


def _timeouts(pytester: pytest.Pytester, *options: str) -> dict[str, object]:
    """Each collected test's timeout mark (its seconds), or None where it has none."""
    items, _ = pytester.inline_genitems(
        *options, "--optbench-optimizers=sgd", "--optbench-batch-sizes=100", *CPU
    )
    marks = {item.name: item.get_closest_marker("timeout") for item in items}
    return {name: mark.args[0] if mark is not None else None for name, mark in marks.items()}


def test_scenario_tests_get_the_timeout_unless_theirs_is_given(pytester, monkeypatch):
    monkeypatch.delenv("PYTEST_TIMEOUT", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_matrix=MATRIX,
        test_own="""
        import pytest

        @pytest.mark.timeout(9)
        def test_own_mark(scenario):
            pass

        def test_no_scenario():
            pass
        """,
    )
    own = {"test_own_mark[sgd-bs100-cpu]": 9, "test_no_scenario": None}
    assert _timeouts(pytester) == {"test_converges[sgd-bs100-cpu]": DEFAULT_TIMEOUT, **own}
    assert _timeouts(pytester, "--optbench-timeout=5") == {"test_converges[sgd-bs100-cpu]": 5.0, **own}
    assert _timeouts(pytester, "--optbench-timeout=0") == {"test_converges[sgd-bs100-cpu]": None, **own}
    assert _timeouts(pytester, "--optbench-timeout=5", "--timeout=7") == {
        "test_converges[sgd-bs100-cpu]": None,
        **own,
    }
    monkeypatch.setenv("PYTEST_TIMEOUT", "7")
    assert _timeouts(pytester, "--optbench-timeout=5")["test_converges[sgd-bs100-cpu]"] is None


def test_a_timeout_without_pytest_timeout_is_a_usage_error(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_matrix=MATRIX)
    result = pytester.runpytest("-p", "no:timeout", "--optbench-timeout=5", *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --optbench-timeout: pytest-timeout, which applies it, is not loaded*"]
    )
    pytester.runpytest("-p", "no:timeout", "--optbench-optimizers=sgd", "--optbench-batch-sizes=100",
                       "--benchmark-disable", *CPU).assert_outcomes(passed=1)  # fmt: skip


def test_a_scenario_that_never_ends_fails_at_the_timeout(pytester):
    """In a subprocess: pytest-timeout's SIGALRM must not meet the outer run's own."""
    pytester.makeconftest(SPIN)
    pytester.makepyfile(test_matrix=MATRIX)
    options = ("--optbench-optimizers=spin,sgd", "--optbench-batch-sizes=100", "--benchmark-disable", *CPU)
    result = pytester.runpytest_subprocess(*options, "--optbench-timeout=5", timeout=120)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            # pytest-timeout's own words, in the middle, changed in 2.4 ("Timeout >5.0s" before).
            "E   *Failed: spin-bs100-cpu ran past --optbench-timeout 5 s, its timed rounds included "
            "(Timeout*>5.0s*); give a longer limit, or 0 for none",
            "FAILED test_matrix.py::test_converges?spin-bs100-cpu?*",
        ]
    )


def test_pytest_timeouts_own_limit_wins(pytester):
    pytester.makeconftest(SPIN)
    pytester.makepyfile(test_matrix=MATRIX)
    options = ("--optbench-optimizers=spin", "--optbench-batch-sizes=100", "--benchmark-disable", *CPU)
    result = pytester.runpytest_subprocess(*options, "--optbench-timeout=300", "--timeout=1", timeout=120)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E   *Failed: Timeout*>1.0s*"])
    assert "--optbench-timeout" not in result.stdout.str()
