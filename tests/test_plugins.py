"""Optimizers from outside optbench: the command line, pyproject.toml, entry points and the template."""

import fnmatch
import json
from importlib.metadata import EntryPoint
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from optbench import OPTIMIZERS, messages, plugin, prepare, train
from optbench.gate import main as gate
from optbench.optimizers import specs
from optbench.problems import PROBLEMS
from optbench.report import main as report

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "optbench" / "benchmarks"
CONFTEST = 'pytest_plugins = ("optbench.plugin",)\n'
CPU = ("--optbench-devices=cpu", "-p", "no:cacheprovider")


@pytest.fixture
def matrix(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    return pytester


def test_an_optimizer_from_the_command_line_joins_the_matrix(matrix):
    result = matrix.runpytest(
        '--optbench-optimizer=mysgd=torch.optim:SGD{"lr": 0.03, "momentum": 0.5}',
        "--optbench-batch-sizes=100",
        "--benchmark-json=out.json",
        "--benchmark-min-rounds=1",
        "-v",
        *CPU,
    )
    result.stdout.fnmatch_lines(
        ["*test_converges?mysgd-bs100-cpu? PASSED*", "*test_converges?sgd-bs100-cpu? PASSED*"]
    )
    saved = json.loads((matrix.path / "out.json").read_text())
    # Beside the reference pair alone, not the whole registry.
    assert sorted(b["extra_info"]["id"] for b in saved["benchmarks"]) == [
        "adam-bs100-cpu", "mysgd-bs100-cpu", "sgd-bs100-cpu"
    ]  # fmt: skip
    assert plugin.REFERENCE == ("adam", "sgd")
    (mine,) = [b["extra_info"] for b in saved["benchmarks"] if b["extra_info"]["optimizer"] == "mysgd"]
    assert json.loads(mine["hyperparams"]) == {"lr": 0.03, "momentum": 0.5}
    assert mine["status"] == "converged"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), list(OPTIMIZERS)),  # nothing added: every registered optimizer
        (("--optbench-optimizer=mysgd=torch.optim:SGD",), ["adam", "mysgd", "sgd"]),
        (
            ("--optbench-optimizer= zz =torch.optim:SGD", "--optbench-optimizer=aa=torch.optim:SGD"),
            ["aa", "adam", "sgd", "zz"],
        ),
        (
            ("--optbench-optimizer=mysgd=torch.optim:SGD", "--optbench-optimizers=mysgd,rprop"),
            ["mysgd", "rprop"],
        ),
        (("--optbench-optimizer=sgd=torch.optim:SGD",), ["adam", "sgd"]),  # retuning a reference optimizer
    ],
)
def test_which_optimizers_run_beside_added_ones(matrix, options, expected):
    result = matrix.runpytest(*options, "--optbench-batch-sizes=100", "--collect-only", "-q", *CPU)
    cases = [line.split("[")[1].split("-bs")[0] for line in result.outlines if "test_converges[" in line]
    assert sorted(cases) == expected


def test_an_optimizer_from_pyproject(matrix):
    matrix.makepyprojecttoml(
        """
        [tool.optbench.optimizers.heavy]
        class = "torch.optim:SGD"
        kwargs = {lr = 0.03, momentum = 0.5}
        elementwise = true
        """
    )
    result = matrix.runpytest(
        "--optbench-optimizers=heavy", "--optbench-batch-sizes=100", "-v", "--benchmark-disable", *CPU
    )
    result.stdout.fnmatch_lines(["*test_converges?heavy-bs100-cpu? PASSED*"])
    result.assert_outcomes(passed=1)


def test_an_optimizer_from_an_entry_point(matrix, monkeypatch):
    """A package installed next to the run (a real .dist-info that importlib.metadata finds)."""
    matrix.makepyfile(
        plugged="""
        import torch
        from optbench import OptimizerInfo

        def entries():
            return [OptimizerInfo("plugged", None, torch.optim.SGD, defaults={"lr": 0.03})]
        """
    )
    info = matrix.mkdir("plugged-0.1.dist-info")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugged\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{specs.ENTRY_POINT_GROUP}]\nplugged = plugged:entries\n")
    monkeypatch.syspath_prepend(matrix.path)
    assert [entry.name for entry in specs.from_entry_points()] == ["plugged"]
    result = matrix.runpytest(
        "--optbench-optimizers=plugged", "--optbench-batch-sizes=100", "--benchmark-disable", "-v", *CPU
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_converges?plugged-bs100-cpu? PASSED*"])


BAD_SPECS = {
    "no module": (
        "--optbench-optimizer=x=no_such_module:Opt",
        "--optbench-optimizer 'x=no_such_module:Opt': cannot import 'no_such_module' (No module named "
        "'no_such_module'); install it or fix the name",
    ),
    "not an optimizer": (
        "--optbench-optimizer=x=torch.nn:Linear",
        "--optbench-optimizer 'x=torch.nn:Linear': torch.nn:Linear is not a torch.optim.Optimizer subclass",
    ),
    "no class": (
        "--optbench-optimizer=x=torch.optim:Nope",
        "--optbench-optimizer 'x=torch.optim:Nope': module 'torch.optim' has no 'Nope'",
    ),
    "bad kwargs": (
        '--optbench-optimizer=x=torch.optim:SGD{"lr": 0.1, "momentun": 0.9}',
        '--optbench-optimizer \'x=torch.optim:SGD{"lr": 0.1, "momentun": 0.9}\': SGD(lr=0.1, momentun=0.9) '
        "fails: *unexpected keyword argument 'momentun'",
    ),
    "bad value": (
        '--optbench-optimizer=x=torch.optim:SGD{"lr": -1}',
        "--optbench-optimizer 'x=torch.optim:SGD{\"lr\": -1}': SGD(lr=-1) fails: Invalid learning rate: -1",
    ),
    "bad json": (
        "--optbench-optimizer=x=torch.optim:SGD{lr: 1}",
        "--optbench-optimizer 'x=torch.optim:SGD{lr: 1}': the keyword arguments are not valid JSON*",
    ),
    "no name": (
        "--optbench-optimizer=torch.optim:SGD",
        "--optbench-optimizer 'torch.optim:SGD': expected NAME=module:Class*",
    ),
    "bad name": (
        "--optbench-optimizer=My SGD=torch.optim:SGD",
        "--optbench-optimizer 'My SGD=torch.optim:SGD': name 'My SGD' must be lower-case*",
    ),
    "twice": (
        '--optbench-optimizer=x=torch.optim:SGD{"lr": 0.1}',
        "*added optimizers: optimizer 'x' is registered twice; give each a name of its own",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_bad_spec_is_one_line_before_any_test_runs(matrix, case):
    option, message = BAD_SPECS[case]
    extra = [option] if case == "twice" else []
    result = matrix.runpytest(option, *extra, *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}" if not message.startswith("*") else message])
    assert "Traceback" not in result.stderr.str()
    assert "test_converges" not in result.stdout.str()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "[tool.optbench.optimizers.x]\nkwargs = {lr = 1}",
            '*pyproject.toml ?tool.optbench.optimizers.x?: needs class = "module:Class"',
        ),
        (
            '[tool.optbench.optimizers.x]\nclass = "torch.optim:SGD"\nlr = 1',
            "*pyproject.toml ?tool.optbench.optimizers.x?: unknown key(s) lr; choose from class, kwargs, "
            "elementwise, needs_closure, train_eval, create_graph",
        ),
    ],
)
def test_a_bad_pyproject_table_is_one_line(matrix, table, message):
    (matrix.path / "pyproject.toml").write_text(table)
    result = matrix.runpytest(*CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_broken_entry_point_is_one_line(matrix, monkeypatch):
    point = EntryPoint(name="broken", value="no_such_package:entries", group=specs.ENTRY_POINT_GROUP)
    monkeypatch.setattr(specs, "entry_points", lambda group: [point])
    result = matrix.runpytest(*CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: entry point broken = no_such_package:entries (optbench.optimizers): does not load*"]
    )


def test_the_template_is_short_and_its_optimizer_converges(pytester):
    template = ROOT / "templates" / "conftest.py"
    assert len(template.read_text().splitlines()) < 50
    pytester.makeconftest(template.read_text())
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    result = pytester.runpytest("--optbench-optimizers=signsgd", "--benchmark-disable", "-v", *CPU)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*signsgd-bs1-cpu* PASSED*"])


def test_invalid_toml_is_one_line(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.optbench\n")
    with pytest.raises(specs.SpecError, match=r"pyproject.toml: not valid TOML"):
        specs.from_pyproject(path)
    assert specs.from_pyproject(tmp_path / "missing.toml") == []


def ids(result: pytest.RunResult) -> list[str]:
    return sorted(
        line.split("[", 1)[1].split("]", 1)[0] for line in result.stdout.lines if "::test_converges[" in line
    )


def test_implementations_are_separate_scenarios(matrix):
    result = matrix.runpytest(
        "--optbench-impl=forloop,foreach,fused",
        "--optbench-optimizers=adam,lbfgs",
        "--optbench-batch-sizes=100",
        "--benchmark-disable",
        "-v",
        "-rs",
        *CPU,
    )
    assert ids(result) == [
        "adam.foreach-bs100-cpu", "adam.forloop-bs100-cpu", "adam.fused-bs100-cpu",
        "lbfgs.foreach-bs100-cpu", "lbfgs.forloop-bs100-cpu", "lbfgs.fused-bs100-cpu",
    ]  # fmt: skip
    result.assert_outcomes(passed=4, skipped=2)
    result.stdout.fnmatch_lines(["*lbfgs has no foreach implementation on cpu*"])


@pytest.mark.parametrize("name", [name for name, info in OPTIMIZERS.items() if len(info.impls("cpu")) > 1])
def test_implementations_reach_the_same_parameters_in_float64(name):
    """As PyTorch's own optimizer tests compare foreach and fused against the for-loop: in
    float64, within torch.testing's float64 tolerances (rtol and atol 1e-7). Measured after
    500 steps: most agree bit for bit, fused Adam/AdamW to 1e-15, foreach ASGD to 3e-8."""
    info = OPTIMIZERS[name]
    finals = {}
    for impl in info.impls("cpu"):
        for batch_size in (1, 100):
            ready = prepare(info.scenario(batch_size, impl=impl, dtype="float64", epochs=5))
            train(ready)
            finals[impl, batch_size] = [p.detach() for p in ready.model.parameters()]
    for (impl, batch_size), params in finals.items():
        for mine, reference in zip(params, finals["forloop", batch_size], strict=True):
            torch.testing.assert_close(
                mine, reference, rtol=1e-7, atol=1e-7, msg=f"{name} {impl} bs {batch_size}"
            )


def test_dtypes_are_separate_scenarios_with_their_own_expectations(matrix):
    result = matrix.runpytest(
        "--optbench-dtypes=float64,bfloat16",
        "--optbench-optimizers=adam",
        "--optbench-batch-sizes=1,100",
        "--benchmark-json=out.json",
        "--benchmark-min-rounds=1",
        "-v",
        *CPU,
    )
    assert ids(result) == [
        "adam-bs1-cpu-bfloat16", "adam-bs1-cpu-float64", "adam-bs100-cpu-bfloat16", "adam-bs100-cpu-float64",
    ]  # fmt: skip
    result.assert_outcomes(passed=3, xfailed=1)
    result.stdout.fnmatch_lines(["*adam-bs1-cpu-bfloat16* XFAIL*"])
    saved = json.loads((matrix.path / "out.json").read_text())
    dtypes = {b["extra_info"]["id"]: b["extra_info"]["dtype"] for b in saved["benchmarks"]}
    assert dtypes["adam-bs100-cpu-float64"] == "float64" and dtypes["adam-bs1-cpu-bfloat16"] == "bfloat16"


def test_shards_split_the_suite_without_overlap(matrix):
    options = (
        "--optbench-optimizers=sgd,adam,rmsprop",
        "--optbench-batch-sizes=50,100",
        "--benchmark-disable",
        "-v",
    )
    whole = ids(matrix.runpytest(*options, *CPU))
    shards = [ids(matrix.runpytest(*options, f"--optbench-shard={index}/3", *CPU)) for index in (1, 2, 3)]
    assert sorted(id_ for shard in shards for id_ in shard) == whole and len(whole) == 6
    assert all(len(shard) == 2 for shard in shards)
    again = ids(matrix.runpytest(*options, "--optbench-shard=2/3", *CPU))
    assert again == shards[1]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--optbench-impl=forloop,simd",
            "*--optbench-impl: unknown implementation 'simd'; choose from forloop, foreach, fused",
        ),
        (
            "--optbench-dtypes=float16",
            "*--optbench-dtypes: unknown dtype 'float16'; choose from float32, float64, bfloat16",
        ),
        ("--optbench-shard=3/2", "*--optbench-shard: expected I/N with 1 <= I <= N, such as 1/4, got '3/2'"),
        ("--optbench-shard=1", "*--optbench-shard: expected I/N*"),
        ("--optbench-seeds=0", "*--optbench-seeds: seeds must be 'auto' or a positive integer, got '0'"),
    ],
)
def test_bad_axis_options_are_one_line(matrix, option, message):
    result = matrix.runpytest(option, *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_convergence_checks_run_under_xdist_with_the_same_results(matrix):
    options = (
        "--optbench-optimizers=sgd,adam,stuck",
        "--optbench-batch-sizes=10,100",
        '--optbench-optimizer=stuck=torch.optim:SGD{"lr": 1e-9}',
        "--benchmark-disable",
        *CPU,
    )
    serial = matrix.runpytest_subprocess(*options)
    parallel = matrix.runpytest_subprocess(*options, "-n", "2")
    serial.assert_outcomes(passed=4, failed=2)
    parallel.assert_outcomes(passed=4, failed=2)
    parallel.stdout.fnmatch_lines(["*ConvergenceError: stuck-bs10-cpu did not converge*"])


@pytest.mark.parametrize("save", ["--benchmark-autosave", "--benchmark-json=out.json", "--benchmark-save=x"])
def test_saving_benchmarks_under_xdist_stops_with_a_clear_message(matrix, save):
    result = matrix.runpytest_subprocess("-n", "2", save, "--optbench-optimizers=sgd", *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    flag = save.split("=")[0]
    result.stderr.fnmatch_lines(
        [f"ERROR: {flag} with pytest-xdist (-n): pytest-benchmark times nothing under xdist, so nothing "
         "would be saved; run the timed benchmarks without -n (convergence checks alone may use -n)"]
    )  # fmt: skip
    assert not (matrix.path / "out.json").exists() and not (matrix.path / ".benchmarks").exists()


class _Options:
    """A stand-in for pytest's config, holding only the options the xdist check reads."""

    def __init__(self, **options):
        self.options = {"dist": "load", **options}

    def getoption(self, name, default=None):
        return self.options.get(name, default)


def test_under_xdist_the_empty_file_from_an_old_pytest_benchmark_is_removed(tmp_path):
    path = tmp_path / "out.json"
    handle = path.open("wb")  # pytest-benchmark before 5.3 hands over the file it opened, so created
    with pytest.raises(pytest.UsageError, match=r"^--benchmark-json with pytest-xdist"):
        plugin._refuse_saving_under_xdist(_Options(benchmark_json=handle))
    assert handle.closed and not path.exists()


def test_under_xdist_a_json_path_from_a_new_pytest_benchmark_leaves_the_disk_alone(tmp_path):
    path = tmp_path / "out.json"
    path.write_text('{"mine": 1}')  # from 5.3 on the option is a Path and nothing has been written yet
    with pytest.raises(pytest.UsageError, match=r"^--benchmark-json with pytest-xdist"):
        plugin._refuse_saving_under_xdist(_Options(benchmark_json=path))
    assert path.read_text() == '{"mine": 1}'


def test_the_report_merges_the_shards_runs(matrix, tmp_path):
    options = (
        "--optbench-optimizers=sgd,adam",
        "--optbench-batch-sizes=10,100",
        "--benchmark-min-rounds=1",
        *CPU,
    )
    for index in (1, 2):
        matrix.runpytest(
            *options, f"--optbench-shard={index}/2", f"--benchmark-json=shard{index}.json"
        ).assert_outcomes(passed=2)
    out = tmp_path / "out"
    assert (
        report([str(matrix.path / "shard1.json"), str(matrix.path / "shard2.json"), "--out", str(out)]) == 0
    )
    table = pd.read_csv(out / "summary.csv")
    assert sorted(table.id) == ["adam-bs10-cpu", "adam-bs100-cpu", "sgd-bs10-cpu", "sgd-bs100-cpu"]
    assert set(table.run) == {"shard1", "shard2"}


def test_a_pyproject_whose_optbench_entry_is_not_a_table_is_one_line(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool]\noptbench = 1\n")
    with pytest.raises(specs.SpecError, match=r"must be a table of tables"):
        specs.from_pyproject(path)


def test_choosing_the_line_alone_keeps_the_matrix_before_the_suite(matrix):
    # Its ids and parameters as before there were problems, so runs saved then compare; the record
    # still names its problem.
    result = matrix.runpytest(
        "--optbench-problems=line",
        "--optbench-optimizers=sgd",
        "--optbench-batch-sizes=100",
        "--benchmark-min-rounds=1",
        "--benchmark-json=out.json",
        *CPU,
    )
    result.assert_outcomes(passed=1)
    (bench,) = json.loads((matrix.path / "out.json").read_text())["benchmarks"]
    assert bench["name"] == "test_converges[sgd-bs100-cpu]" and bench["extra_info"]["id"] == "sgd-bs100-cpu"
    assert bench["params"] == {"optimizer": "sgd", "batch_size": 100, "device": "cpu"}
    assert bench["extra_info"]["problem"] == "line"


def test_an_unknown_problem_is_a_one_line_usage_error(matrix):
    result = matrix.runpytest("--optbench-problems=line,nosuch", *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    choices = ", ".join(PROBLEMS)
    assert choices.startswith("line, ")  # every problem is named, the default first
    message = f"ERROR: --optbench-problems: unknown problem 'nosuch'; choose from {choices}"
    result.stderr.fnmatch_lines([message])


QUIET_PROBLEM = """
import dataclasses

from optbench import LINE, OPTIMIZERS, LineDataset

pytest_plugins = ("optbench.plugin",)


def quiet(seed):
    data = LineDataset(seed, noise=0.1)
    return data.x, data.y


def pytest_optbench_problems():
    return [dataclasses.replace(LINE, name="quiet", data=quiet)]


def pytest_optbench_optimizers():
    # The built-ins are tuned on the line alone; on the quiet line SGD takes its tuning for the line.
    sgd = OPTIMIZERS["sgd"]
    tuned = {("quiet", *key[1:]): case for key, case in sgd.cases.items() if key[0] == "line"}
    return [dataclasses.replace(sgd, cases={**sgd.cases, **tuned})]
"""


def test_a_problem_from_a_conftest_joins_the_matrix_the_report_and_the_gate(pytester, tmp_path, capsys):
    pytester.makeconftest(QUIET_PROBLEM)
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    options = ("--optbench-optimizers=sgd", "--optbench-batch-sizes=100", "--benchmark-min-rounds=1", *CPU)
    both = "--optbench-problems=line,quiet"
    result = pytester.runpytest(*options, both, "--benchmark-json=run.json", "-v")
    result.stdout.fnmatch_lines(
        ["*test_converges?sgd-bs100-cpu? PASSED*", "*test_converges?sgd-bs100-cpu-quiet? PASSED*"]
    )
    saved = json.loads((pytester.path / "run.json").read_text())["benchmarks"]
    params = {bench["extra_info"]["id"]: bench["params"]["problem"] for bench in saved}
    assert params == {"sgd-bs100-cpu": "line", "sgd-bs100-cpu-quiet": "quiet"}
    quiet = next(bench["extra_info"] for bench in saved if bench["params"]["problem"] == "quiet")
    assert quiet["reference_loss"] < 0.02  # a quarter of the line's noise: about a sixteenth of its MSE
    assert quiet["problem"] == "quiet" and quiet["hyperparams"] == '{"lr": 0.03}'  # the line's tuning
    run = str(pytester.path / "run.json")
    assert report([run, "--out", str(tmp_path / "report")]) == 0
    assert set(pd.read_csv(tmp_path / "report" / "summary.csv").id) == set(params)
    capsys.readouterr()  # what the runs above printed
    assert gate(["--baseline", run, "--candidate", run]) == 0
    assert capsys.readouterr().out.strip() == "no scenario changed"
    only = pytester.runpytest(*options, "--optbench-problems=quiet", "--benchmark-disable", "-v")
    only.stdout.fnmatch_lines(["*test_converges?sgd-bs100-cpu-quiet? PASSED*"])
    only.assert_outcomes(passed=1)
    pytester.makefile(".ini", pytest="[pytest]\n")  # no --optbench-problems: it joins every problem
    everything = pytester.runpytest("--collect-only", "-q", *options)
    collected = [line.split("[")[1].rstrip("]") for line in everything.outlines if "test_converges[" in line]
    assert collected == [
        "sgd-bs100-cpu",
        "sgd-bs100-cpu-ill_conditioned",
        "sgd-bs100-cpu-logistic",
        "sgd-full-cpu-rosenbrock",
        "sgd-bs100-cpu-noisy_quadratic",
        "sgd-bs100-cpu-sine",
        "sgd-bs100-cpu-quiet",
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("line", "problem 'line' is already in the table; give yours a name of its own"),
        ("bfloat16", "problem name 'bfloat16' is a dtype's; give the problem another"),
    ],
)
def test_an_added_problem_with_a_name_it_cannot_have_is_a_one_line_usage_error(pytester, name, message):
    pytester.makeconftest(QUIET_PROBLEM.replace('name="quiet"', f'name="{name}"'))
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    result = pytester.runpytest(*CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest_optbench_problems: {message}"])


RAISING = "import torch\n\n\nclass Opt(torch.optim.SGD):\n    pass\n\n\n{raises}\n"
"""A plug-in module: an optimizer class, then a line that runs as the module is imported."""

EXITS = """
import torch


class Opt(torch.optim.SGD):
    def __init__(self, params, **kwargs):
        raise SystemExit(3)
"""

HOOK_RAISES = """
pytest_plugins = ("optbench.plugin",)


def pytest_optbench_{hook}():
    {raises}
"""

PLUG_INS = {
    "module raises RuntimeError on import": (
        {"plug": RAISING.format(raises='raise RuntimeError("no GPU driver")')},
        None,
        "--optbench-optimizer=x=plug:Opt",
        "ERROR: --optbench-optimizer 'x=plug:Opt': importing 'plug' raised RuntimeError: no GPU driver "
        "(at plug.py:8); fix that module",
    ),
    "module raises ValueError on import": (
        {"plug": RAISING.format(raises='raise ValueError("bad setting")')},
        None,
        "--optbench-optimizer=x=plug:Opt",
        "ERROR: --optbench-optimizer 'x=plug:Opt': importing 'plug' raised ValueError: bad setting*",
    ),
    "module exits on import": (
        {"plug": RAISING.format(raises="raise SystemExit(2)")},
        None,
        "--optbench-optimizer=x=plug:Opt",
        "ERROR: *importing 'plug' raised SystemExit(2) (at plug.py:8); fix that module",
    ),
    "relative module name": (
        {},
        None,
        "--optbench-optimizer=x=.foo:Bar",
        "ERROR: --optbench-optimizer 'x=.foo:Bar': '.foo' is a relative module name; give the full one*",
    ),
    "constructor exits": (
        {"plug": EXITS},
        None,
        "--optbench-optimizer=x=plug:Opt",
        "ERROR: --optbench-optimizer 'x=plug:Opt': Opt() fails: SystemExit(3) (at plug.py:6)",
    ),
    "optimizer hook raises": (
        {},
        HOOK_RAISES.format(hook="optimizers", raises='raise RuntimeError("no licence")'),
        None,
        "ERROR: pytest_optbench_optimizers: raised RuntimeError: no licence (at conftest.py:5); fix the "
        "code named there",
    ),
    "optimizer hook exits": (
        {},
        HOOK_RAISES.format(hook="optimizers", raises="raise SystemExit(1)"),
        None,
        "ERROR: pytest_optbench_optimizers: raised SystemExit(1) (at conftest.py:5); fix the code named "
        "there",
    ),
    "optimizer hook returns something else": (
        {},
        HOOK_RAISES.format(hook="optimizers", raises='return ["sgd"]'),
        None,
        "ERROR: pytest_optbench_optimizers: returned 'sgd', not an OptimizerInfo; return a list of "
        "optbench.OptimizerInfo entries",
    ),
    "problem hook raises": (
        {},
        HOOK_RAISES.format(hook="problems", raises='raise KeyError("data")'),
        None,
        "ERROR: pytest_optbench_problems: raised KeyError: 'data' (at conftest.py:5); fix the code named "
        "there",
    ),
}


@pytest.mark.parametrize("case", list(PLUG_INS))
def test_whatever_a_plug_in_raises_is_one_usage_error_line(pytester, case):
    modules, conftest, option, message = PLUG_INS[case]
    pytester.makeconftest(conftest or CONFTEST)
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text(), **modules)
    pytester.syspathinsert()
    result = pytester.runpytest(*([option] if option else []), *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and len(errors[0]) <= len("ERROR: ") + messages.LINE_LIMIT, errors
    result.stderr.fnmatch_lines([message])
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output


def test_an_entry_point_whose_function_raises_is_one_line(matrix, monkeypatch):
    matrix.makepyfile(plugged="def entries():\n    raise RuntimeError('registry offline')\n")
    matrix.syspathinsert()
    point = EntryPoint(name="plugged", value="plugged:entries", group=specs.ENTRY_POINT_GROUP)
    monkeypatch.setattr(specs, "entry_points", lambda group: [point])
    result = matrix.runpytest(*CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: entry point plugged = plugged:entries (optbench.optimizers): raised RuntimeError: registry "
         "offline (at plugged.py:2); fix or uninstall its package"]
    )  # fmt: skip
    assert "Traceback" not in result.stderr.str()


def test_an_entry_point_that_gives_a_generator_gives_all_its_entries(monkeypatch):
    entries = (OPTIMIZERS[name] for name in ("adam", "sgd"))
    point = EntryPoint(name="gen", value="gen:entries", group=specs.ENTRY_POINT_GROUP)
    monkeypatch.setattr(EntryPoint, "load", lambda self: lambda: entries)
    monkeypatch.setattr(specs, "entry_points", lambda group: [point])
    assert [entry.name for entry in specs.from_entry_points()] == ["adam", "sgd"]


def test_a_module_in_pyproject_that_raises_on_import_is_one_line(matrix):
    matrix.makepyfile(plug=RAISING.format(raises='raise RuntimeError("no GPU driver")'))
    matrix.syspathinsert()
    matrix.makepyprojecttoml('[tool.optbench.optimizers.x]\nclass = "plug:Opt"\n')
    result = matrix.runpytest(*CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: *pyproject.toml ?tool.optbench.optimizers.x?: importing 'plug' raised RuntimeError: no GPU "
         "driver*; fix that module"]
    )  # fmt: skip


def test_ctrl_c_while_importing_a_plug_in_still_stops_the_run(tmp_path, monkeypatch):
    (tmp_path / "interrupts.py").write_text("raise KeyboardInterrupt\n")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        specs.parse_option("x=interrupts:Opt")


def test_a_10_mb_keyword_argument_gives_a_short_error_line(matrix):
    huge = "a" * 10_000_000
    result = matrix.runpytest(f'--optbench-optimizer=x=torch.optim:SGD{{"lr": "{huge}"}}', *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(line) <= len("ERROR: ") + messages.LINE_LIMIT
    assert line.startswith('ERROR: --optbench-optimizer \'x=torch.optim:SGD{"lr": "aaa')
    assert "characters cut" in line
    assert line.endswith("fails: '<' not supported between instances of 'str' and 'float'")


@given(text=st.text(), limit=st.integers(min_value=60, max_value=400))
def test_one_line_is_one_line_within_the_limit(text, limit):
    line = specs.one_line(text, limit)
    assert len(line.splitlines()) <= 1 and len(line) <= limit
    flat = " ".join(part.strip() for part in text.splitlines() if part.strip())
    assert line == flat if len(flat) <= limit else "characters cut" in line


def test_one_line_keeps_the_start_and_the_fix_of_a_long_line():
    line = specs.one_line("start: " + "x" * 1000 + "\nthe fix", 100)
    assert line.startswith("start: xxx") and line.endswith("xxx the fix") and len(line) <= 100
    assert " … (942 characters cut) … " in line  # 1015 characters in all, 73 of them kept


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            'elementwise = "false"',
            'elementwise = "false" is not a TOML boolean; write elementwise = true or elementwise = false, '
            "without quotes",
        ),
        ("needs_closure = 1", "needs_closure = 1 is not a TOML boolean; write needs_closure = true or*"),
        ('kwargs = "lr = 0.1"', 'kwargs = "lr = 0.1" is not a table; write kwargs = {lr = 0.01} or *'),
    ],
)
def test_pyproject_flags_are_toml_booleans_and_kwargs_a_table(tmp_path, key, message):
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[tool.optbench.optimizers.heavy]\nclass = "torch.optim:SGD"\n{key}\n')
    with pytest.raises(specs.SpecError) as raised:
        specs.from_pyproject(path)
    assert fnmatch.fnmatch(str(raised.value), f"{path} [[]tool.optbench.optimizers.heavy]: {message}")


def test_pyproject_false_is_false(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[tool.optbench.optimizers.heavy]\nclass = "torch.optim:SGD"\n'
        "elementwise = false\nneeds_closure = true\n"
    )
    (info,) = specs.from_pyproject(path)
    assert info.elementwise is False and info.needs_closure is True
