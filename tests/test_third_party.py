"""A real third-party optimizer from PyPI through the matrix, the checks and the report.

Lion (the lion-pytorch package) is an optional extra: `pip install -e ".[lion]"`.
It joins the matrix with one command-line option and no edit to optbench. A sign
method takes fixed-size steps, so one learning rate fits batch size 1 only; its
0.005 converged on 32 of 32 seeds there (worst slope error 0.158, bound 0.2).
"""

from pathlib import Path

import pandas as pd
import pytest

from optbench.report import main as report

pytest.importorskip("lion_pytorch", reason="lion-pytorch is not installed; pip install -e '.[lion]'")

BENCHMARKS = Path(__file__).resolve().parents[1] / "optbench" / "benchmarks"
LION = '--optbench-optimizer=lion=lion_pytorch:Lion{"lr": 0.005}'


def test_lion_runs_through_the_matrix_the_checks_and_the_report(pytester, tmp_path, capsys):
    pytester.makeconftest('pytest_plugins = ("optbench.plugin",)\n')
    pytester.makepyfile(test_matrix=(BENCHMARKS / "test_matrix.py").read_text())
    result = pytester.runpytest(
        LION,
        "--optbench-optimizers=lion,adam",
        "--optbench-batch-sizes=1",
        "--optbench-devices=cpu",
        "--benchmark-min-rounds=1",
        "--benchmark-json=run.json",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=2)
    assert report([str(pytester.path / "run.json"), "--out", str(tmp_path / "out")]) == 0, (
        capsys.readouterr().err
    )
    table = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("id")
    assert table.loc["lion-bs1-cpu", "status"] == "converged" and table.loc["lion-bs1-cpu", "passed"]
    assert "lion" in (tmp_path / "out" / "summary.md").read_text()
