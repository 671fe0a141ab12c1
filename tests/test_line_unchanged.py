"""The line behaves exactly as before: the default matrix gives the committed baseline's numbers.

``baselines/cpu.json`` was saved by the schema-2 code, before problems were values. CPU runs repeat
bit for bit for a seed, torch version, thread count, CPU and MKL mode, so on the build that saved it the gate
finds nothing changed even with every tolerance at zero, and every seed's numbers are the saved
ones. On another torch build (CI's lowest and newest environments) rounding may differ, so there
the matrix must only hold the baseline within the gate's calibrated tolerances.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cpuinfo
import pytest
import torch

from optbench import LINE, OPTIMIZERS, SEED_PROFILE
from optbench.gate import main as gate
from optbench.record import QUANTILES, quantile_field, seed_field
from optbench.results import load

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "baselines" / "cpu.json"
MACHINE = json.loads(COMMITTED.read_text())["machine_info"]
RECORDED_ON = "AMD EPYC"
"""The CPU that saved the committed baseline, which predates runs recording it (``cpu_brand``): on
2026-12-01 the bit-for-bit part passed on AMD EPYC machines; on 2026-12-02 an Intel Xeon with AVX-512
gave the same numbers within the gate's tolerances but not bit for bit (MKL picks its kernels by CPU)."""
SUITE_MKL_CBWR = os.environ.get("OPTBENCH_SUITE_MKL_CBWR") == "1"
"""Whether MKL_CBWR is the suite's own (conftest.py), which the matrix below runs without."""
MKL_MODE = "" if SUITE_MKL_CBWR else os.environ.get("MKL_CBWR", "")
"""The MKL mode the matrix runs in here: the user's own, if any (the suite's is not passed on)."""
BUILD = (
    torch.__version__, torch.get_num_threads(), cpuinfo.get_cpu_info().get("brand_raw", ""),
    MKL_MODE or "default",
)  # fmt: skip
SAVED_BY = (
    MACHINE["torch_version"], MACHINE["torch_threads"], MACHINE.get("cpu_brand", RECORDED_ON),
    MACHINE.get("mkl_cbwr") or "default",
)  # fmt: skip
SAME_BUILD = BUILD == SAVED_BY
MATRIX = len(OPTIMIZERS) * len(LINE.batch_sizes)


def _run_the_default_matrix(saved: Path) -> str:
    """The timed default matrix and seed profile, saved, as a user runs them: in a fresh process."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_XDIST")}
    if SUITE_MKL_CBWR:  # the suite's own MKL mode (conftest.py), not the user's
        env.pop("MKL_CBWR", None)
        env.pop("OPTBENCH_SUITE_MKL_CBWR", None)
    benchmarks = ROOT / "optbench" / "benchmarks"
    modules = [str(benchmarks / name) for name in ("test_matrix.py", "test_seed_profile.py")]
    options = ["-q", "-p", "no:cacheprovider", "--optbench-devices=cpu", "--benchmark-min-rounds=1"]
    options += ["--optbench-problems=line"]  # the line's matrix, as before the suite
    options += [f"--benchmark-json={saved}", f"--optbench-baseline={COMMITTED}"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *modules, *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_default_matrix_holds_the_committed_baseline_and_on_its_build_repeats_it(tmp_path, capsys):
    saved = tmp_path / "run.json"
    output = _run_the_default_matrix(saved)
    counts = dict(
        (kind, int(n)) for n, kind in re.findall(r"(\d+) (passed|failed|xfailed|xpassed|error)", output)
    )
    expected = [
        (info, bs) for info in OPTIMIZERS.values() for bs in LINE.batch_sizes if info.expected_failure(bs)
    ]
    assert "failed" not in counts and "error" not in counts, output[-3000:]
    assert counts["passed"] == MATRIX - len(expected) + len(SEED_PROFILE) + 1  # + the falls-faster test
    assert counts.get("xfailed", 0) + counts.get("xpassed", 0) == len(expected)
    assert json.loads(saved.read_text())["optbench_schema"] == 4
    assert json.loads(COMMITTED.read_text())["optbench_schema"] == 2
    capsys.readouterr()
    status = gate(["--baseline", str(COMMITTED), "--candidate", str(saved)])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert err.strip().endswith(f"0 regression(s) in {MATRIX + len(SEED_PROFILE)} scenario(s)")
    if not SAME_BUILD:  # it held the baseline within the tolerances: say what was not compared
        pytest.skip(
            "held baselines/cpu.json within the gate's tolerances; bit for bit only on the build that saved "
            "it (torch {}, {} threads, {}, MKL mode {}), and this is torch {}, {} threads, {}, "
            "MKL mode {}".format(*SAVED_BY, *BUILD)
        )
    status = gate(["--baseline", str(COMMITTED), "--candidate", str(saved), "--max-growth", "all=0"])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert out.strip() == "no scenario changed"
    # The gate compares the gated metrics; here every number the baseline kept must be the same.
    before = load([COMMITTED]).frame.set_index("id")
    after = load([saved]).frame.set_index("id")
    assert set(before.index) == set(after.index) and len(before) == MATRIX + len(SEED_PROFILE)
    bounded = [metric.name for metric in LINE.table if metric.bound is not None]
    kept = [metric.name for metric in LINE.table if metric.name != "distance"]  # not kept at schema 2
    columns = ["status", "seeds", "seed_runs", "pass_rate", "steps", "seed_status", *kept]
    columns += [seed_field(name) for name in kept]
    columns += [quantile_field(name, q) for name in bounded for q in QUANTILES]
    for scenario in before.index:
        for column in columns:
            assert before.at[scenario, column] == after.at[scenario, column], (scenario, column)
        assert before.at[scenario, "epoch_loss"] == after.at[scenario, "epoch_loss"][:1], scenario


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
