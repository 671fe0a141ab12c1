"""The line behaves exactly as before: the default matrix gives the committed baseline's numbers.

``baselines/cpu.json`` was saved by the schema-2 code, before problems were values; CPU runs repeat
bit for bit for a seed, torch version and thread count, so the gate finds nothing changed even with
every tolerance at zero.
"""

import json
from pathlib import Path

import pytest

from optbench import OPTIMIZERS, SEED_PROFILE
from optbench.gate import main as gate
from optbench.optimizers.registry import BATCH_SIZES

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "baselines" / "cpu.json"


def test_the_default_matrix_matches_the_committed_baseline_at_zero_tolerance(pytester, capsys):
    pytester.makeconftest('pytest_plugins = ("optbench.plugin",)\n')
    for module in ("test_matrix.py", "test_seed_profile.py"):
        pytester.makepyfile(**{module.removesuffix(".py"): (ROOT / "benchmarks" / module).read_text()})
    result = pytester.runpytest(
        "--benchmark-min-rounds=1",
        "--benchmark-json=run.json",
        f"--optbench-baseline={COMMITTED}",
        "--optbench-devices=cpu",
        "-p",
        "no:cacheprovider",
    )
    outcomes = result.parseoutcomes()
    expected = [(info, bs) for info in OPTIMIZERS.values() for bs in BATCH_SIZES if info.expected_failure(bs)]
    assert "failed" not in outcomes and "errors" not in outcomes, result.stdout.str()
    matrix = len(OPTIMIZERS) * len(BATCH_SIZES)
    assert outcomes["passed"] == matrix - len(expected) + len(SEED_PROFILE) + 1  # + the falls-faster test
    assert outcomes.get("xfailed", 0) + outcomes.get("xpassed", 0) == len(expected)

    run = pytester.path / "run.json"
    assert json.loads(run.read_text())["optbench_schema"] == 3
    assert json.loads(COMMITTED.read_text())["optbench_schema"] == 2
    capsys.readouterr()
    status = gate(["--baseline", str(COMMITTED), "--candidate", str(run), "--max-growth", "all=0"])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert out.strip() == "no scenario changed"
    assert err.strip().endswith(f"0 regression(s) in {matrix + len(SEED_PROFILE)} scenario(s)")


@pytest.mark.parametrize("tolerance", ["all=0", "excess_loss=0"])
def test_at_zero_tolerance_the_gate_fails_the_smallest_growth(tmp_path, capsys, tolerance):
    """The same check can fail: one scenario's excess loss one part in a million higher is caught."""
    data = json.loads(COMMITTED.read_text())
    worse = next(entry for entry in data["scenarios"] if entry["id"] == "adam-bs10-cpu")
    worse["final_mse"] *= 1 + 1e-6
    candidate = tmp_path / "worse.json"
    candidate.write_text(json.dumps(data))
    status = gate(["--baseline", str(COMMITTED), "--candidate", str(candidate), "--max-growth", tolerance])
    out = capsys.readouterr().out
    assert status == 1
    assert "adam-bs10-cpu" in out and "REGRESSED: excess MSE grew by" in out and "(tolerance 0)" in out
