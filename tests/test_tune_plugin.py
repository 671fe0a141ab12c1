"""``--optbench-tune``: each case runs at the learning rate its sweep chose, cached in pytest's cache."""

import json

import pytest
from test_plugins import BENCHMARKS, CONFTEST, CPU

from optbench import plugin
from optbench.options import MAX_SEED
from optbench.tune.settings import CaseRow

ON_CPU = "--optbench-devices=cpu"
MYSGD = "--optbench-optimizer=mysgd=torch.optim:SGD"
GRID = "--optbench-lr-grid=0.001,0.01,0.1,1"
"""Four points, 0.1 among them: it passes at batch sizes 10 and 100 on every seed."""
TUNE = ("--optbench-tune", "--optbench-tune-seeds=4", GRID)
FAST = (ON_CPU, MYSGD, "--optbench-optimizers=mysgd", *TUNE, "--benchmark-disable")
"""An added SGD with no arguments, tuned on a short grid over four seeds, untimed."""

NO_LR = """
import torch


class NoLR(torch.optim.Optimizer):
    \"\"\"Steps of 0.01 times the gradient, with no lr to sweep.\"\"\"

    def __init__(self, params, momentum=0.0):
        super().__init__(params, {"momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param.add_(param.grad, alpha=-0.01)
"""

FLAKY = """
import torch

from optbench import OptimizerInfo
from optbench.optimizers.registry import Case

pytest_plugins = ("optbench.plugin",)


def pytest_optbench_optimizers():
    # Converges at batch size 100, yet marked as never converging there (a strict expected failure).
    return [
        OptimizerInfo(
            "flaky", None, torch.optim.SGD, cases={("line", 100): Case({"lr": 0.1}, fails="hand-measured")}
        )
    ]
"""


@pytest.fixture
def matrix(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    return pytester


@pytest.fixture
def sweeps(monkeypatch):
    """The jobs the plugin swept (in-process runs only), each still swept for real."""
    swept = []
    real = plugin.sweep_case

    def counted(job):
        swept.append(job)
        return real(job)

    monkeypatch.setattr(plugin, "sweep_case", counted)
    return swept


def tune_lines(result: pytest.RunResult) -> list[str]:
    """The lines of the "optbench tune" summary section."""
    lines = result.stdout.lines
    start = next(index for index, line in enumerate(lines) if " optbench tune " in line)
    section = []
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith(("===", "---")):
            break
        section.append(line)
    return section


def cached_rows(pytester: pytest.Pytester) -> list[CaseRow]:
    folder = pytester.path / ".pytest_cache" / "v" / "optbench" / "tune"
    return [CaseRow.model_validate_json(path.read_text()) for path in sorted(folder.iterdir())]


def test_an_added_sgd_without_arguments_is_tuned_and_the_second_run_hits_the_cache(matrix, sweeps):
    options = (ON_CPU, MYSGD, "--optbench-optimizers=mysgd", *TUNE, "--optbench-batch-sizes=10,100")
    first = matrix.runpytest(*options, "--benchmark-json=out.json", "--benchmark-min-rounds=1")
    first.assert_outcomes(passed=2)
    assert sorted(job.batch_size for job in sweeps) == [10, 100]
    rows = {row.batch_size: row for row in cached_rows(matrix)}
    assert sorted(rows) == [10, 100] and all(row.window is not None for row in rows.values())
    saved = json.loads((matrix.path / "out.json").read_text())["benchmarks"]
    for bench in saved:
        record = bench["extra_info"]
        assert json.loads(record["hyperparams"]) == {"lr": rows[record["batch_size"]].lr}
        assert record["status"] == "converged" and record["expected_failure"] == ""
    lines = tune_lines(first)
    assert [line.split(":")[0] for line in lines] == ["mysgd-bs10-cpu", "mysgd-bs100-cpu"]
    for size, line in zip((10, 100), lines, strict=True):
        assert line.startswith(f"mysgd-bs{size}-cpu: lr {rows[size].lr:g}, window ")
        assert line.endswith("(swept now)")

    again = matrix.runpytest(*options, "--benchmark-disable")
    again.assert_outcomes(passed=2)
    assert len(sweeps) == 2  # none more
    cached = tune_lines(again)
    assert all(line.endswith(" (cached)") for line in cached)
    assert [line.removesuffix(" (cached)") for line in cached] == [
        line.removesuffix(" (swept now)") for line in lines
    ]


@pytest.mark.parametrize(
    ("change", "swept"),
    [
        ("--optbench-lr-grid=0.01,0.1,1", 2),
        ("--optbench-tune-seeds=3", 2),
        ('--optbench-optimizer=mysgd=torch.optim:SGD{"momentum": 0.5}', 2),
        ("--optbench-batch-sizes=10", 2),
        ("--optbench-seed=1", 2),
        ('--optbench-optimizer=mysgd=torch.optim:SGD{"lr": 0.5}', 1),  # its own lr is what is swept
        ("--optbench-seeds=2", 1),  # the scenario's seeds, not the sweep's
    ],
)
def test_a_changed_grid_seeds_kwargs_or_batch_size_sweeps_again(matrix, sweeps, change, swept):
    base = {
        "grid": GRID,
        "seeds": "--optbench-tune-seeds=4",
        "spec": MYSGD,
        "sizes": "--optbench-batch-sizes=100",
    }
    matrix.runpytest(*FAST, base["sizes"]).assert_outcomes(passed=1)
    assert len(sweeps) == 1
    flag = change.split("=")[0]
    kept = [value for value in base.values() if value.split("=")[0] != flag]
    options = (ON_CPU, "--optbench-optimizers=mysgd", "--optbench-tune", *kept, change)
    result = matrix.runpytest(*options, "--benchmark-json=out.json", "--benchmark-min-rounds=1")
    result.assert_outcomes(passed=1)
    assert len(sweeps) == swept
    (record,) = [
        bench["extra_info"] for bench in json.loads((matrix.path / "out.json").read_text())["benchmarks"]
    ]
    assert json.loads(record["hyperparams"])["lr"] in (0.001, 0.01, 0.1, 1.0)  # a grid point, not 0.5
    assert tune_lines(result)[0].endswith("(swept now)" if swept == 2 else "(cached)")


@pytest.mark.parametrize(
    "entry",
    [
        "not json",
        '{"optimizer": "mysgd"}',  # JSON, not a case
        "batch_size_of_another_case",  # a valid case, but not this one
    ],
)
def test_a_cache_entry_that_is_not_this_cases_sweep_is_swept_again(matrix, sweeps, entry):
    matrix.runpytest(*FAST, "--optbench-batch-sizes=100").assert_outcomes(passed=1)
    (path,) = (matrix.path / ".pytest_cache" / "v" / "optbench" / "tune").iterdir()
    if entry == "batch_size_of_another_case":
        entry = path.read_text().replace('"batch_size": 100', '"batch_size": 10')
        CaseRow.model_validate_json(entry)  # still valid on its own
    path.write_text(entry)
    result = matrix.runpytest(*FAST, "--optbench-batch-sizes=100")
    result.assert_outcomes(passed=1)
    assert len(sweeps) == 2 and tune_lines(result)[0].endswith("(swept now)")
    assert CaseRow.model_validate_json(path.read_text()).batch_size == 100


def test_without_the_cache_provider_every_run_sweeps(matrix, sweeps):
    for _ in range(2):
        result = matrix.runpytest(*FAST, "--optbench-batch-sizes=100", *CPU)
        result.assert_outcomes(passed=1)
        assert tune_lines(result)[0].endswith("(swept now, not cached: no cacheprovider)")
    assert len(sweeps) == 2
    assert not (matrix.path / ".pytest_cache").exists()


def test_under_xdist_the_workers_tune_into_the_shared_cache(matrix, sweeps):
    options = (*FAST, "--optbench-batch-sizes=10,100")
    parallel = matrix.runpytest_subprocess(*options, "-n", "2")
    parallel.assert_outcomes(passed=2)
    lines = tune_lines(parallel)  # from the workers, through the tests' reports
    assert sorted(line.split(":")[0] for line in lines) == ["mysgd-bs10-cpu", "mysgd-bs100-cpu"]
    assert all(line.endswith("(swept now)") for line in lines)
    assert len(cached_rows(matrix)) == 2
    serial = matrix.runpytest(*options)
    serial.assert_outcomes(passed=2)
    assert not sweeps and all(line.endswith("(cached)") for line in tune_lines(serial))


def test_one_sweep_serves_every_implementation_of_a_case(matrix, sweeps):
    result = matrix.runpytest(
        ON_CPU, "--optbench-optimizers=sgd", *TUNE, "--optbench-batch-sizes=100",
        "--optbench-impl=forloop,foreach", "--benchmark-disable", "-v",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*sgd.forloop-bs100-cpu* PASSED*", "*sgd.foreach-bs100-cpu* PASSED*"])
    assert len(sweeps) == 1 and not dict(sweeps[0].base().hyperparams).get("foreach")
    assert [line.split(":")[0] for line in tune_lines(result)] == ["sgd-bs100-cpu"]


def test_sgd_added_without_arguments_passes_every_default_batch_size_of_the_line(matrix):
    """The issue's acceptance, with the default grid. 8 seeds a point: about 17 s on 2 cores (32: 65 s)."""
    result = matrix.runpytest(
        ON_CPU, MYSGD, "--optbench-optimizers=mysgd", "--optbench-tune", "--optbench-tune-seeds=8",
        "--benchmark-disable", "-v",
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    lines = tune_lines(result)
    assert [line.split(":")[0] for line in lines] == [f"mysgd-bs{size}-cpu" for size in (1, 10, 50, 100)]
    # An added optimizer proven elementwise (optbench.optimizers.proof) sweeps stacked, as the built-ins do.
    assert all(", window " in line and "[13 lr x 8 seeds, vectorised" in line for line in lines)


def test_an_optimizer_without_an_lr_is_refused_by_tuning_and_runs_without_it(matrix):
    matrix.makepyfile(nolr=NO_LR)
    matrix.syspathinsert()
    options = (
        ON_CPU,
        "--optbench-optimizer=nolr=nolr:NoLR",
        "--optbench-optimizers=nolr",
        "--benchmark-disable",
    )
    refused = matrix.runpytest(*options, "--optbench-tune", "--optbench-batch-sizes=10")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in refused.stderr.lines if line.strip()] == [
        "ERROR: --optbench-tune: optimizer 'nolr' takes no lr keyword argument; tune only optimizers with an "
        "lr, or run nolr without tuning at the settings you give it"
    ]
    assert "test_converges" not in refused.stdout.str()
    matrix.runpytest(*options, "--optbench-batch-sizes=10").assert_outcomes(passed=1)


def test_a_case_where_no_lr_on_the_grid_passes_is_an_expected_failure(matrix):
    result = matrix.runpytest(
        ON_CPU, MYSGD, "--optbench-optimizers=mysgd", "--optbench-tune", "--optbench-tune-seeds=4",
        "--optbench-lr-grid=1e-6,1e-5", "--optbench-batch-sizes=100", "--benchmark-json=out.json",
        "--benchmark-min-rounds=1", "-rx",
    )  # fmt: skip
    result.assert_outcomes(xfailed=1)
    reason = (
        "tuned: no lr on the grid (2 from 1e-06 to 1e-05) passed on 0.95 of 4 seeds; "
        "best pass rate 0.00 at lr 1e-05"
    )
    result.stdout.fnmatch_lines([f"XFAIL test_matrix.py::test_converges?mysgd-bs100-cpu? - {reason}"])
    (bench,) = json.loads((matrix.path / "out.json").read_text())["benchmarks"]
    assert bench["extra_info"]["expected_failure"] == reason
    assert json.loads(bench["extra_info"]["hyperparams"]) == {"lr": 1e-05}
    assert tune_lines(result) == [
        "mysgd-bs100-cpu: no lr passes; best pass rate 0.00 at lr 1e-05 [2 lr x 4 seeds, vectorised, "
        f"{cached_rows(matrix)[0].seconds:.1f} s] (swept now)"
    ]


def test_under_tuning_the_registrys_own_expected_failures_give_way_to_the_sweeps(pytester):
    pytester.makeconftest(FLAKY)
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    options = (ON_CPU, "--optbench-optimizers=flaky", "--optbench-batch-sizes=100", "--benchmark-disable")
    pytester.runpytest(*options).assert_outcomes(failed=1)  # [XPASS(strict)] hand-measured
    pytester.runpytest(*options, *TUNE).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "the learning-rate grid is empty; give at least one learning rate"),
        ("0", "learning rate 0.0 is not a positive finite number"),
        ("-1", "learning rate -1.0 is not a positive finite number"),
        ("nan", "learning rate nan is not a positive finite number"),
        ("abc", "learning rate 'abc' is not a number"),
        ("1:2", "'1:2' is not LOW:HIGH:PER_DECADE"),
    ],
)
def test_a_bad_lr_grid_is_one_line(matrix, value, message):
    result = matrix.runpytest(f"--optbench-lr-grid={value}", "--optbench-tune", *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [line for line in result.stderr.lines if "--optbench-lr-grid" in line]
    assert line.endswith(f": error: argument --optbench-lr-grid: {message}")  # after pytest's name
    assert "Traceback" not in result.stderr.str()


def test_a_sweeps_seeds_past_the_largest_are_one_line(matrix):
    result = matrix.runpytest(
        f"--optbench-seed={MAX_SEED - 31}", "--optbench-tune", "--optbench-tune-seeds=64", *CPU
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --optbench-seed {MAX_SEED - 31} with --optbench-tune-seeds 64 sweeps seeds up to "
         f"{MAX_SEED + 32}, past the largest seed {MAX_SEED} (2**63 - 1); give --optbench-seed "
         f"{MAX_SEED - 63} or less"]
    )  # fmt: skip
