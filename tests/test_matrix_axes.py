"""The matrix's batch-size and problem axes: full batch without data, clamping, unknown problems.

Nothing here trains: the plugin only collects (or builds scenarios), and the command lines stop
before their first run.
"""

import re
from functools import partial
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import optbench.tune.__main__ as tune_cli
from optbench import OPTIMIZERS, Scenario, calibrate
from optbench.problems import ILL_CONDITIONED, LINE, PROBLEMS, ROSENBROCK

ROOT = Path(__file__).resolve().parents[1]
CONFTEST = 'pytest_plugins = ("optbench.plugin",)\n'
CPU = ("--optbench-devices=cpu", "-p", "no:cacheprovider")
CHOICES = ", ".join(PROBLEMS)

BUILDS_ONLY = '''
def test_case(scenario, batch_size):
    """Builds the case's scenario and trains nothing."""
    assert scenario.batch_size == batch_size
    print("CASE", scenario.id, batch_size)
'''


# --- the one function: Problem.batch_sizes_for ---------------------------------------------------


def test_a_problem_knows_its_data_size_once():
    assert LINE.size == 100 and ILL_CONDITIONED.size == 100 and ROSENBROCK.size == 1
    assert "size" in vars(ILL_CONDITIONED)  # cached on the instance: the data is built once


def test_larger_batch_sizes_clamp_to_full_batch_and_run_once():
    assert ILL_CONDITIONED.batch_sizes_for((50, 100, 500)) == (50, 100)
    assert ILL_CONDITIONED.batch_sizes_for((500, 1000)) == (100,)
    assert ILL_CONDITIONED.batch_sizes_for((500, 10)) == (100, 10)  # the order asked
    assert LINE.batch_sizes_for((1, 10, 50, 100, 500)) == (1, 10, 50, 100)


def test_without_sizes_asked_a_problem_runs_its_own():
    for problem in PROBLEMS.values():
        assert problem.batch_sizes_for(None) == problem.batch_sizes, problem.name
    assert LINE.batch_sizes_for(()) == LINE.batch_sizes


def test_a_problem_without_data_has_no_batch_size_axis():
    for asked in (None, (1,), (1, 10), (10, 100, 1000)):
        assert ROSENBROCK.batch_sizes_for(asked) == (1,), asked


# --- scenario ids and the refusal ----------------------------------------------------------------


def test_a_problem_without_data_says_full_in_its_ids():
    assert OPTIMIZERS["adam"].scenario(1, problem=ROSENBROCK).id == "adam-full-cpu-rosenbrock"
    assert OPTIMIZERS["adam"].scenario(1, problem=ROSENBROCK, dtype="float64").id == (
        "adam-full-cpu-rosenbrock-float64"
    )


def test_problems_with_data_keep_bs_even_at_full_batch():
    assert OPTIMIZERS["adam"].scenario(100).id == "adam-bs100-cpu"  # the line's ids do not change
    assert OPTIMIZERS["adam"].scenario(100, problem=ILL_CONDITIONED).id == "adam-bs100-cpu-ill_conditioned"


@pytest.mark.parametrize("batch_size", [2, 10, 100])
def test_a_batch_size_on_a_problem_without_data_is_refused_in_one_line(batch_size):
    with pytest.raises(ValueError, match="rosenbrock") as caught:
        Scenario("sgd", partial(torch.optim.SGD, lr=0.01), batch_size=batch_size, problem=ROSENBROCK)
    message = str(caught.value)
    assert "\n" not in message and "batch_size 1" in message and f"not {batch_size}" in message
    with pytest.raises(ValueError, match="batch_size 1"):
        OPTIMIZERS["sgd"].scenario(batch_size, problem=ROSENBROCK)


def test_a_scenario_bringing_its_own_data_to_a_problem_without_keeps_its_batch_size():
    data = TensorDataset(torch.zeros(20, 0), torch.zeros(20, 1))
    scenario = OPTIMIZERS["sgd"].scenario(10, problem=ROSENBROCK, dataset=data)
    assert scenario.batch_size == 10 and scenario.id == "sgd-bs10-cpu-rosenbrock"


# --- the pytest plugin ---------------------------------------------------------------------------


@pytest.fixture
def matrix(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_matrix=(ROOT / "optbench" / "benchmarks" / "test_matrix.py").read_text())
    return pytester


def collected(result: pytest.RunResult) -> list[str]:
    return sorted(line.split("[", 1)[1].rstrip("]") for line in result.stdout.lines if "::test_" in line)


def test_the_plugin_collects_clamped_batch_sizes_once(matrix):
    options = ["--optbench-problems=ill_conditioned", "--optbench-batch-sizes=50,100,500"]
    result = matrix.runpytest("--collect-only", "-q", *options, "--optbench-optimizers=sgd", *CPU)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert collected(result) == ["sgd-bs100-cpu-ill_conditioned", "sgd-bs50-cpu-ill_conditioned"]


@pytest.mark.parametrize("sizes", [None, "1", "1,10", "10,100,1000"])
def test_the_plugin_runs_one_full_batch_case_per_optimizer_without_data(matrix, sizes):
    options = ["--optbench-problems=rosenbrock", "--optbench-optimizers=sgd,adam"]
    options += [f"--optbench-batch-sizes={sizes}"] if sizes else []
    result = matrix.runpytest("--collect-only", "-q", *options, *CPU)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert collected(result) == ["adam-full-cpu-rosenbrock", "sgd-full-cpu-rosenbrock"]


def test_the_plugins_case_without_data_is_at_batch_size_1(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_builds=BUILDS_ONLY)
    options = ["--optbench-problems=rosenbrock,ill_conditioned", "--optbench-batch-sizes=10,500"]
    # --runxfail: the cases only build their scenario here, so SGD's measured failures would XPASS.
    result = pytester.runpytest("-s", "--runxfail", *options, "--optbench-optimizers=sgd", *CPU)
    result.assert_outcomes(passed=3)
    cases = sorted(re.findall(r"CASE (\S+) (\d+)", result.stdout.str()))
    assert cases == [
        ("sgd-bs10-cpu-ill_conditioned", "10"),
        ("sgd-bs100-cpu-ill_conditioned", "100"),
        ("sgd-full-cpu-rosenbrock", "1"),
    ]


def test_an_unknown_problem_is_a_one_line_usage_error_in_pytest(matrix):
    result = matrix.runpytest("--optbench-problems=nosuch", *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR == 4
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert errors == [f"ERROR: --optbench-problems: unknown problem 'nosuch'; choose from {CHOICES}"]
    assert "Traceback" not in result.stderr.str()


# --- the tune command line -----------------------------------------------------------------------


@pytest.fixture
def swept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list:
    """The jobs ``python -m optbench.tune`` would sweep, caught before any sweep runs."""
    monkeypatch.chdir(tmp_path)  # no project's pyproject.toml adds optimizers
    jobs: list = []

    def catch(found, **kwargs):
        jobs.extend(found)
        return []

    monkeypatch.setattr(tune_cli, "sweep", catch)
    return jobs


def test_the_tune_command_line_clamps_batch_sizes(swept):
    args = ["--optimizers=sgd", "--problems=ill_conditioned,rosenbrock", "--batch-sizes=1,50,100,500"]
    assert tune_cli.main(args) == 0
    assert [(job.problem.name, job.batch_size) for job in swept] == [
        ("ill_conditioned", 1),
        ("ill_conditioned", 50),
        ("ill_conditioned", 100),
        ("rosenbrock", 1),
    ]
    assert swept[-1].name == "sgd-full-cpu-rosenbrock"


def test_the_tune_command_line_sweeps_one_case_per_optimizer_without_data(swept):
    assert tune_cli.main(["--optimizers=sgd,adam", "--problems=rosenbrock", "--batch-sizes=1,10"]) == 0
    assert sorted((job.info.name, job.batch_size) for job in swept) == [("adam", 1), ("sgd", 1)]


@pytest.mark.parametrize("main", [tune_cli.main, calibrate.main], ids=["tune", "calibrate"])
def test_an_unknown_problem_is_one_line_and_exit_2_on_the_command_line(main, swept, capsys, monkeypatch):
    monkeypatch.setattr(calibrate, "measure", lambda *args, **kwargs: pytest.fail("calibrated"))
    with pytest.raises(SystemExit) as exit_:
        main(["--problems=nosuch", "--optimizers=sgd"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    prog = "python -m optbench.tune" if main is tune_cli.main else "python -m optbench.calibrate"
    said = f"{prog}: error: --problems: unknown problem 'nosuch'; choose from {CHOICES}"
    assert err.splitlines()[-1] == said
    assert "Traceback" not in err and not swept


# --- calibrate's case lists ----------------------------------------------------------------------


@pytest.fixture
def cases(monkeypatch: pytest.MonkeyPatch) -> None:
    """``calibrate``'s runs return their job instead of training it."""
    monkeypatch.setattr(calibrate, "_init_worker", lambda: None)  # leaves this process's threads alone
    fields = ("profile", "problem", "optimizer", "batch_size", "seed")
    monkeypatch.setattr(calibrate, "_one", lambda job: dict(zip(fields, job, strict=True)))
    fields_dtype = ("dtype", "problem", "optimizer", "batch_size", "seeds")
    monkeypatch.setattr(calibrate, "_dtype_case", lambda job: dict(zip(fields_dtype, job, strict=True)))


@pytest.mark.usefixtures("cases")
def test_calibrate_measures_clamped_batch_sizes_once():
    problems = [ILL_CONDITIONED, ROSENBROCK]
    runs = calibrate.measure(problems, ["sgd"], [50, 100, 500], seeds=1, workers=1, seed_profile=False)
    default = runs[runs.profile == "default"]
    assert list(zip(default.problem, default.batch_size, strict=True)) == [
        ("ill_conditioned", 50),
        ("ill_conditioned", 100),
        ("rosenbrock", 1),
    ]
    table = calibrate.measure_dtypes(problems, ["sgd", "adam"], [1, 10, 500], ["float32"], seeds=2, workers=1)
    assert list(zip(table.problem, table.optimizer, table.batch_size, strict=True)) == [
        ("ill_conditioned", "sgd", 1),
        ("ill_conditioned", "sgd", 10),
        ("ill_conditioned", "sgd", 100),
        ("ill_conditioned", "adam", 1),
        ("ill_conditioned", "adam", 10),
        ("ill_conditioned", "adam", 100),
        ("rosenbrock", "sgd", 1),
        ("rosenbrock", "adam", 1),
    ]


@pytest.mark.usefixtures("cases")
def test_calibrate_without_batch_sizes_takes_each_problems_own():
    table = calibrate.measure_dtypes([LINE, ROSENBROCK], ["sgd"], None, ["float64"], seeds=1, workers=1)
    assert list(zip(table.problem, table.batch_size, strict=True)) == [
        *(("line", size) for size in LINE.batch_sizes),
        ("rosenbrock", 1),
    ]
