"""Optimizers from outside optbench: the command line, pyproject.toml, entry points and the template."""

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from optbench import specs

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
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
    (mine,) = [b["extra_info"] for b in saved["benchmarks"] if b["extra_info"]["optimizer"] == "mysgd"]
    assert json.loads(mine["hyperparams"]) == {"lr": 0.03, "momentum": 0.5}
    assert mine["status"] == "converged"


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
    matrix.makepyfile(
        plugged="""
        import torch
        from optbench import OptimizerInfo

        def entries():
            return [OptimizerInfo("plugged", None, torch.optim.SGD, defaults={"lr": 0.03})]
        """
    )
    point = EntryPoint(name="plugged", value="plugged:entries", group=specs.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        specs, "entry_points", lambda group: [point] if group == specs.ENTRY_POINT_GROUP else []
    )
    monkeypatch.syspath_prepend(matrix.path)
    result = matrix.runpytest(
        "--optbench-optimizers=plugged", "--optbench-batch-sizes=100", "--benchmark-disable", *CPU
    )
    result.assert_outcomes(passed=1)


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
            "*pyproject.toml ?tool.optbench.optimizers.x?: unknown key(s) lr",
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
