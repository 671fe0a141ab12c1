"""How long the report takes on a large input: 1,000 scenarios x 20 saved runs, generated.

Run: ``pytest benchmarks/test_report_scale.py``. The inputs are written before
timing; one round is the whole ``python -m optbench.report`` over all 20 files.
"""

import json
import math
from pathlib import Path

import pytest

from optbench import LINE
from optbench.record import SCHEMA_VERSION, fields
from optbench.report import main

SCENARIOS, RUNS = 1000, 20
METRICS = [metric.as_dict() for metric in LINE.table]


def _record(index: int, run: int) -> dict:
    """A one-seed schema-3 record of the line, in the shape (and field order) the engine saves."""
    name, batch_size = f"opt{index // 4:03d}", (1, 10, 50, 100)[index % 4]
    epochs = 20
    rate = 0.2 + (index % 7) / 10 + run / 1000
    curve = [0.17 + 250 * math.exp(-rate * epoch) for epoch in range(epochs + 1)]
    scenario = f"{name}-bs{batch_size}-cpu"
    slope, intercept, reference = -5.01, 1.02, (-5.0, 1.0)
    metrics = {
        "final_loss": curve[-1], "reference_loss": 0.17, "excess_loss": curve[-1] - 0.17,
        "distance": math.hypot(slope - reference[0], intercept - reference[1]), "slope": slope,
        "intercept": intercept, "slope_error": abs(slope - LINE.truth[0]),
        "intercept_error": abs(intercept - LINE.truth[1]),
    }  # fmt: skip
    info = {
        "id": scenario, "problem": "line", "optimizer": name, "batch_size": batch_size, "device": "cpu",
        "dtype": "float32", "schedule": "constant", "epochs": epochs, "seed": 0, "shuffle": False,
        "hyperparams": "{}", "steps": epochs * (100 // batch_size), "seconds": 0.1, "status": "converged",
        "expected_failure": "", "seeds": 1, "seed_runs": "one", "elementwise": "", "pass_rate": 1.0,
        "metrics": METRICS, "step_loss_stride": 10,
        **metrics, **{f"seed_{key}": [value] for key, value in metrics.items()}, "seed_status": ["converged"],
        **{f"{key}_q{q}": metrics[key] for key in ("excess_loss", "slope_error", "intercept_error")
           for q in (10, 50, 90, 95)},
        "target_step": 50, "target_seconds": 0.05, "seed_target_step": [50], "seed_target_seconds": [0.05],
        "target_step_q50": 50,
        "epoch_loss": curve, "step_loss": [0.2 + j / 1000 for j in range(200)],
        **{f"epoch_loss_q{q}": curve for q in (10, 50, 90)},
    }  # fmt: skip
    assert list(info) == list(fields(LINE.table))  # every declared field, in the declared order
    stats = {"min": 0.1, "max": 0.12, "mean": 0.11, "stddev": 0.005, "median": 0.11, "rounds": 5}
    return {"name": f"test_converges[{scenario}]", "fullname": f"test_matrix.py::test_converges[{scenario}]",
            "params": {"problem": "line", "optimizer": name, "batch_size": batch_size, "device": "cpu"},
            "extra_info": info, "stats": stats}  # fmt: skip


@pytest.fixture(scope="module")
def many_runs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    for run in range(RUNS):
        data = {
            "machine_info": {"node": "generated", "torch_version": "0"},
            "optbench_schema": SCHEMA_VERSION,
            "commit_info": {"id": f"{run:040d}"},
            "datetime": f"2026-01-{run + 1:02d}T00:00:00+00:00",
            "benchmarks": [_record(index, run) for index in range(SCENARIOS)],
        }
        (folder / f"{run + 1:04d}_generated.json").write_text(json.dumps(data))
    return folder


def test_report_over_1000_scenarios_and_20_runs(benchmark, many_runs, tmp_path) -> None:
    out = tmp_path / "report"
    status = benchmark.pedantic(main, args=([str(many_runs), "--out", str(out)],), rounds=1, iterations=1)
    assert status == 0
    assert len((out / "summary.csv").read_text().splitlines()) == SCENARIOS * RUNS + 1
