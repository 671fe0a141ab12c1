"""A new problem is one module and one table entry: least squares with two features, brought by a user.

The problem below lives in the test's own folder (``plane.py``) and joins the run through its
``conftest.py``; nothing in optbench is edited. It has no slope or intercept, so the matrix, the
checks, the report and the gate must all go by its own metric table.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optbench.baseline import main as make_baseline
from optbench.gate import main as gate
from optbench.report import main as report
from optbench.results import load

BENCHMARKS = Path(__file__).resolve().parents[1] / "optbench" / "benchmarks"
CPU = ("--optbench-devices=cpu", "-p", "no:cacheprovider")

PLANE = '''
"""y = 3 x1 - 2 x2 + 0.5 + 0.3 N(0, 1) on 100 points, fitted by nn.Linear(2, 1) under MSE."""

import torch
import torch.nn.functional as F

from optbench import Metric, Problem, Reference

WEIGHTS, BIAS = (3.0, -2.0), 0.5


def data(seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(100, 2, generator=generator) * 4 - 2
    y = x @ torch.tensor(WEIGHTS).view(2, 1) + BIAS + 0.3 * torch.randn(100, 1, generator=generator)
    return x, y


def model(seed):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Linear(2, 1)


def bias_error(model, target):
    """The plane's own metric: how far the fitted bias is from the target's (the reference's)."""
    return {"bias_error": abs(model.bias.item() - target[2])}


def reference(x, y):
    """Exact least squares in float64; parameters in the model's order (weight, then bias)."""
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
    solution = torch.linalg.solve(design.T @ design, design.T @ y.double()).reshape(-1)
    loss = float((design @ solution - y.double().reshape(-1)).square().mean())
    return Reference(loss=loss, params=tuple(solution.tolist()))


PLANE = Problem(
    name="plane",
    data=data,
    model=model,
    loss=F.mse_loss,
    reference=reference,
    metrics=(
        Metric("excess_loss", "excess MSE", bound=0.01, tolerance=0.005),
        Metric("distance", "distance to the least-squares fit", bound=0.1, tolerance=0.05),
        Metric("bias_error", "bias error"),
    ),
    measure=bias_error,
    batch_sizes=(10, 100),
    epochs={10: 20, 100: 200},  # SGD at lr 0.05: worst of 32 seeds 0.0036 excess MSE, 0.047 distance
)
'''

CONFTEST = """
import dataclasses
import os

from optbench import OPTIMIZERS, Case
from plane import PLANE

pytest_plugins = ("optbench.plugin",)


def pytest_optbench_problems():
    return [PLANE]


def pytest_optbench_optimizers():
    # The built-in SGD, tuned for the plane too: a case keyed on the new problem's name.
    sgd, lr = OPTIMIZERS["sgd"], float(os.environ.get("PLANE_LR", "0.05"))
    return [dataclasses.replace(sgd, cases={**sgd.cases, ("plane",): Case({"lr": lr})})]
"""


@pytest.fixture
def plane(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(plane=PLANE)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    pytester.syspathinsert()
    return pytester


OPTIONS = ("--optbench-problems=plane", "--optbench-optimizers=sgd", "--benchmark-min-rounds=1", *CPU)


def test_the_problems_reference_is_its_exact_least_squares(plane):
    import plane as module  # the folder is on sys.path

    x, y = module.data(0)
    reference = module.reference(x, y)
    design = np.column_stack([x.double().numpy(), np.ones(len(x))])
    solution, *_ = np.linalg.lstsq(design, y.double().numpy().reshape(-1), rcond=None)
    assert reference.params == pytest.approx(tuple(solution), abs=1e-12)
    assert reference.params == pytest.approx((3.0, -2.0, 0.5), abs=0.1)  # near the plane it was drawn from
    assert module.PLANE.measured == ("bias_error",)  # its own, beside the generic ones


def test_a_problem_of_ones_own_runs_through_the_matrix_the_report_and_the_gate(
    plane, tmp_path, capsys, monkeypatch
):
    result = plane.runpytest(*OPTIONS, "--benchmark-json=run.json", "-v")
    result.stdout.fnmatch_lines(
        ["*test_converges?sgd-bs10-cpu-plane? PASSED*", "*test_converges?sgd-bs100-cpu-plane? PASSED*"]
    )
    result.assert_outcomes(passed=2)
    saved = json.loads((plane.path / "run.json").read_text())
    assert saved["optbench_schema"] == 4
    records = {bench["extra_info"]["id"]: bench["extra_info"] for bench in saved["benchmarks"]}
    assert set(records) == {"sgd-bs10-cpu-plane", "sgd-bs100-cpu-plane"}
    for record in records.values():
        assert record["problem"] == "plane" and record["seeds"] == 32 and record["pass_rate"] == 1.0
        assert [metric["name"] for metric in record["metrics"]] == [
            "final_loss", "reference_loss", "excess_loss", "distance", "bias_error"
        ]  # fmt: skip
        assert record["bias_error"] <= record["distance"]  # one coordinate of the distance
        assert "slope" not in record and record["distance_q95"] <= 0.1
        assert record["hyperparams"] == '{"lr": 0.05}'  # the plane's case, not the line's lr

    run = str(plane.path / "run.json")
    assert report([run, "--out", str(tmp_path / "report")]) == 0
    table = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert set(table.id) == set(records) and set(table.problem) == {"plane"}
    assert {"excess_loss_q95", "distance_q95"} <= set(table.columns) and "slope" not in table.columns
    assert table.passed.all()
    assert (tmp_path / "report" / "loss_curves.png").stat().st_size > 0

    capsys.readouterr()
    assert gate(["--baseline", run, "--candidate", run, "--max-growth", "all=0"]) == 0
    assert capsys.readouterr().out.strip() == "no scenario changed"

    # A worse candidate: SGD at a fiftieth of its tuned lr ends far from the fit, and the gate says
    # so, naming the plane's own metrics.
    monkeypatch.setenv("PLANE_LR", "0.001")
    slow = plane.runpytest(*OPTIONS, "--benchmark-json=slow.json")
    slow.assert_outcomes(failed=2)
    capsys.readouterr()
    assert gate(["--baseline", run, "--candidate", str(plane.path / "slow.json")]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED: status converged -> not_converged" in out
    assert "excess MSE change" in out and "distance to the least-squares fit change" in out
    assert "sgd-bs10-cpu-plane" in out and "sgd-bs100-cpu-plane" in out


def _benchmarks(path: Path, keep) -> dict:
    data = json.loads(path.read_text())
    data["benchmarks"] = [bench for bench in data["benchmarks"] if keep(bench["extra_info"])]
    return data


def test_a_run_of_the_line_and_a_problem_of_ones_own_reports_baselines_and_gates(plane, tmp_path, capsys):
    """Two problems with different metric tables in one run: every table keeps its own columns."""
    options = ("--optbench-problems=line,plane", "--optbench-optimizers=sgd", "--optbench-batch-sizes=10,100")
    result = plane.runpytest(*options, "--benchmark-min-rounds=1", "--benchmark-json=mixed.json", *CPU)
    result.assert_outcomes(passed=4)
    mixed = plane.path / "mixed.json"
    frame = load([mixed]).frame.set_index("id")
    # distance is bounded on the plane and only reported on the line: the plane keeps its quantiles.
    assert frame.loc["sgd-bs10-cpu-plane", "distance_q95"] <= 0.1
    assert np.isnan(frame.loc["sgd-bs10-cpu", "distance_q95"]) and np.isnan(
        frame.loc["sgd-bs10-cpu", "bias_error"]
    )
    assert frame.loc["sgd-bs10-cpu", "slope_error_q95"] <= 0.2 and np.isnan(
        frame.loc["sgd-bs10-cpu-plane", "slope"]
    )

    assert report([str(mixed), "--out", str(tmp_path / "report")]) == 0
    table = pd.read_csv(tmp_path / "report" / "summary.csv").set_index("id")
    assert table.loc["sgd-bs100-cpu-plane", "distance_q95"] <= 0.1 and table.passed.all()

    baseline = tmp_path / "baseline.json"
    assert make_baseline([str(mixed), "--out", str(baseline)]) == 0
    capsys.readouterr()
    assert gate(["--baseline", str(baseline), "--candidate", str(mixed), "--max-growth", "all=0"]) == 0
    assert capsys.readouterr().out.strip() == "no scenario changed"

    # The plane's seeds spread far worse, its first seed unchanged: only its own quantile can tell.
    worse = json.loads(mixed.read_text())
    for bench in worse["benchmarks"]:
        if bench["extra_info"]["problem"] == "plane":
            bench["extra_info"]["distance_q95"] = 5.0
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    assert gate(["--baseline", str(mixed), "--candidate", str(tmp_path / "worse.json")]) == 1
    out = capsys.readouterr().out
    assert out.count("REGRESSED: 0.95 quantile of the distance to the least-squares fit") == 2

    # A candidate that adds the plane to a run of the line alone: the plane is new, and not gated;
    # the other way round, the plane is missing from the candidate. Neither may crash.
    line_only = tmp_path / "line.json"
    line_only.write_text(json.dumps(_benchmarks(mixed, lambda info: info["problem"] == "line")))
    assert gate(["--baseline", str(line_only), "--candidate", str(mixed)]) == 0
    capsys.readouterr()
    assert gate(["--baseline", str(mixed), "--candidate", str(line_only)]) == 1
    assert capsys.readouterr().out.count("REGRESSED: missing from the candidate") == 2
    assert (
        report(["--baseline", str(line_only), "--candidate", str(mixed), "--out", str(tmp_path / "c")]) == 0
    )
    compared = pd.read_csv(tmp_path / "c" / "summary.csv").set_index("id")
    assert compared.loc["sgd-bs10-cpu-plane", "regression"] == "added"
