"""The benchmark modules run through pytester: parameters, saved JSON, fresh state, and checks that bite."""

import json
import re
from pathlib import Path

import fakes
import pytest
import torch

from optbench import LINE, OPTIMIZERS, Registry
from optbench.devices import unavailable_reason
from optbench.optimizers import proof
from optbench.record import SCHEMA_VERSION, fields

BENCHMARKS = Path(__file__).resolve().parents[1] / "optbench" / "benchmarks"
CONFTEST = 'pytest_plugins = ("optbench.plugin",)\n'
HOOK = """
import fakes

def pytest_optbench_optimizers():
    return [*fakes.SABOTAGED, fakes.RECORDING]
"""
CPU = ("--optbench-devices=cpu", "-p", "no:cacheprovider")


@pytest.fixture
def matrix(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST + HOOK)
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    return pytester


def test_subset_is_timed_and_saved_with_plain_parameters(matrix):
    result = matrix.runpytest(
        "--optbench-optimizers=sgd,adam",
        "--optbench-batch-sizes=10,100",
        "--benchmark-min-rounds=2",
        "--benchmark-json=out.json",
        *CPU,
    )
    result.assert_outcomes(passed=4)
    saved = json.loads((matrix.path / "out.json").read_text())
    by_name = {bench["name"]: bench for bench in saved["benchmarks"]}
    assert sorted(by_name) == [
        f"test_converges[{name}-bs{bs}-cpu]" for name in ("adam", "sgd") for bs in (10, 100)
    ]
    bench = by_name["test_converges[adam-bs10-cpu]"]
    assert bench["fullname"] == "test_matrix.py::test_converges[adam-bs10-cpu]"
    assert bench["params"] == {"optimizer": "adam", "batch_size": 10, "device": "cpu"}
    assert bench["stats"]["rounds"] == 2
    info = bench["extra_info"]
    assert (info["id"], info["status"], info["steps"]) == ("adam-bs10-cpu", "converged", 200)
    assert info["final_loss"] - info["reference_loss"] < 0.25
    assert info["excess_loss"] == pytest.approx(info["final_loss"] - info["reference_loss"])
    assert (info["problem"], info["expected_failure"]) == ("line", "")
    assert info["metrics"] == [metric.as_dict() for metric in LINE.table]
    assert list(info) == list(fields(LINE.table))  # schema 4's fields, in the declared order
    assert (info["schedule"], info["elementwise"]) == ("constant", "declared")
    assert saved["optbench_schema"] == SCHEMA_VERSION == 4


@pytest.mark.parametrize(("given", "line", "suite"), [((), 5, 1), (("--benchmark-min-rounds=2",), 2, 2)])
def test_the_suite_times_its_own_rounds_unless_min_rounds_says_otherwise(matrix, given, line, suite):
    options = ("--optbench-problems=line,rosenbrock", "--optbench-optimizers=adam")
    options += ("--optbench-batch-sizes=100",)
    result = matrix.runpytest(*options, *given, "--benchmark-json=out.json", *CPU)
    result.assert_outcomes(passed=2)
    saved = json.loads((matrix.path / "out.json").read_text())["benchmarks"]
    rounds = {bench["extra_info"]["id"]: bench["stats"]["rounds"] for bench in saved}
    assert rounds == {"adam-bs100-cpu": line, "adam-full-cpu-rosenbrock": suite}


MISSING = [device for device in ("cuda", "mps") if not getattr(torch, device).is_available()]


@pytest.mark.skipif(not MISSING, reason="this machine has every device kind")
def test_absent_devices_are_left_out_in_one_summary_line(matrix):
    options = ("--optbench-optimizers=sgd,adam", "--optbench-batch-sizes=10,100", "--benchmark-disable")
    result = matrix.runpytest(*options, "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4 * (3 - len(MISSING)), deselected=4 * len(MISSING))
    lines = [line for line in result.outlines if line.startswith("optbench: left out")]
    reasons = "; ".join(f"4 for {unavailable_reason(device)}" for device in MISSING)
    assert lines == [
        f"optbench: left out {4 * len(MISSING)} case(s) on devices this machine lacks ({reasons}); "
        "--optbench-devices names the devices to run"
    ]
    assert "SKIPPED" not in result.stdout.str()


@pytest.mark.skipif(not MISSING, reason="this machine has every device kind")
def test_only_absent_devices_are_skipped_each_with_its_reason(matrix):
    # Left out, they would leave no test at all: the run says what it could not do instead.
    result = matrix.runpytest(
        f"--optbench-devices={MISSING[0]}", "--optbench-optimizers=sgd", "--optbench-batch-sizes=100", "-rs"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*SKIPPED*{MISSING[0]}: no *"])
    assert "optbench: left out" not in result.stdout.str()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_shard_is_cut_before_absent_devices_are_left_out(matrix):
    # Machines with and without a GPU cut the same shards: a shard counts every collected case.
    options = ("--optbench-optimizers=sgd", "--optbench-batch-sizes=10,100", "--optbench-devices=cpu,cuda")
    shards = []
    for index in (1, 2, 3):
        result = matrix.runpytest(*options, f"--optbench-shard={index}/3", "--collect-only", "-q")
        shards.append(
            [line.split("[")[1].rstrip("]") for line in result.outlines if "test_converges[" in line]
        )
    # Cut from sgd-bs10-cpu, sgd-bs10-cuda, sgd-bs100-cpu, sgd-bs100-cuda: the first shard's CUDA case
    # is left out; the second holds only one, so it stays (and skips when run).
    assert shards == [["sgd-bs10-cpu"], ["sgd-bs10-cuda"], ["sgd-bs100-cpu"]]


def test_every_round_trains_a_fresh_model_with_a_fresh_optimizer(matrix):
    # An added optimizer is proven elementwise on throwaway runs as the run starts, once per process:
    # proven here first, so that only the benchmark's rounds build it below.
    proof.prove_added(Registry([fakes.RECORDING]), [fakes.RECORDING.name])
    fakes.BUILT.clear()
    result = matrix.runpytest(
        "--optbench-optimizers=recording", "--optbench-batch-sizes=100", "--benchmark-min-rounds=3", *CPU
    )
    result.assert_outcomes(passed=1)
    assert len(fakes.BUILT) == 3 + 1  # three timed rounds and one warm-up
    parameters = [p for params in fakes.BUILT for p in params]
    assert len({id(p) for p in parameters}) == len(parameters) == 2 * 4


SABOTAGE_MESSAGES = {
    "broken.noop": ("ConvergenceError", "did not converge: stalled: 32 of 32 seeds stalled"),  # never moves
    "broken.wrong_sign": ("ConvergenceError", "did not converge: diverged: "),
    "broken.other_model": ("StaleOptimizerError", "the optimizer holds 2 parameter(s) of another model"),
    "timid.sgd": ("ConvergenceError", "did not converge: excess MSE"),
    "timid.adam": ("ConvergenceError", "did not converge: excess MSE"),
}


def test_the_fakes_take_the_registrys_tuned_rates_at_every_batch_size():
    for info in [*fakes.SABOTAGED, fakes.RECORDING, fakes.REPLACEMENTS["sleepy"]]:
        timid = info.name.startswith("timid.")
        base = OPTIMIZERS[info.name.removeprefix("timid.") if timid else "sgd"]
        for bs in LINE.batch_sizes:  # timid: 100x under the registry's lr, else SGD's own
            expected = base.hyperparams(bs)["lr"] / (100 if timid else 1)
            assert info.hyperparams(bs)["lr"] == pytest.approx(expected), (info.name, bs)
    for info in fakes.SABOTAGED:  # each stand-in for SGD is the sabotaged entry under SGD's name
        stand_in = fakes.REPLACEMENTS[info.name]
        assert (stand_in.name, stand_in.factory, stand_in.cases) == ("sgd", info.factory, info.cases)


def test_sabotaged_optimizers_fail_the_benchmark_check(matrix):
    assert sorted(SABOTAGE_MESSAGES) == sorted(info.name for info in fakes.SABOTAGED)
    selected = ",".join(["sgd", *SABOTAGE_MESSAGES])
    result = matrix.runpytest(f"--optbench-optimizers={selected}", "--benchmark-disable", *CPU)
    result.assert_outcomes(passed=4, failed=4 * len(SABOTAGE_MESSAGES))
    text = result.stdout.str()
    for name, (error, message) in SABOTAGE_MESSAGES.items():
        for bs in (1, 10, 50, 100):
            scenario_id = f"{name}-bs{bs}-cpu"
            pattern = rf"E\s+optbench\.[\w.]+\.{error}: {re.escape(scenario_id)}:? .*{re.escape(message)}"
            assert re.search(pattern, text), f"{scenario_id} did not fail with {error}: {message}"


def test_expected_failures_are_strict(pytester):
    pytester.makeconftest(
        CONFTEST
        + """
import torch
from optbench import Case, OptimizerInfo
from fakes import DoNothing

def pytest_optbench_optimizers():
    reason = {("line", 100): Case(fails="does nothing by design")}
    return [
        OptimizerInfo("still", None, DoNothing, cases=reason),
        OptimizerInfo("works", None, torch.optim.SGD, defaults={"lr": 0.03}, cases=reason),
        OptimizerInfo(
            "sometimes", None, torch.optim.SGD, defaults={"lr": 0.03},
            cases={("line", 100): Case(fails="converges on most seeds", strict=False)},
        ),
    ]
"""
    )
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    result = pytester.runpytest(
        "--optbench-optimizers=still,works,sometimes",
        "--optbench-batch-sizes=100",
        "--benchmark-disable",
        "-rxX",
        *CPU,
    )
    result.assert_outcomes(xfailed=1, failed=1, xpassed=1)  # a non-strict case's surprise pass is no failure
    result.stdout.fnmatch_lines(
        [
            "*test_converges?works-bs100-cpu?*",
            "?XPASS(strict)? does nothing by design",
            "XFAIL *still-bs100-cpu* - does nothing by design",
            "XPASS *sometimes-bs100-cpu* - converges on most seeds",
        ]
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--optbench-optimizers=sgd,nope",
            f"ERROR: --optbench-optimizers: unknown optimizer 'nope'; choose from {', '.join(OPTIMIZERS)}",
        ),
        (
            "--optbench-batch-sizes=10,0",
            "*--optbench-batch-sizes: batch sizes must be positive integers, got '0'",
        ),
        (
            "--optbench-devices=cpu,gpu",
            "*--optbench-devices: 'gpu' is not a torch device; use cpu, cuda, cuda:N or mps",
        ),
        ("--optbench-seed=-1", "*--optbench-seed: the seed must be a non-negative integer, got '-1'"),
    ],
)
def test_bad_options_are_one_line_usage_errors(pytester, option, message):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    result = pytester.runpytest(option, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_seed_profile_shows_the_tutorials_finding(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_seed_profile=(BENCHMARKS / "test_seed_profile.py").read_text())
    result = pytester.runpytest("--benchmark-disable", "-v", *CPU)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*test_seed_profile?seed.adam?*PASSED*", "*test_sgd_falls_faster_than_adam PASSED*"]
    )
