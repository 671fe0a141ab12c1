"""Saved runs of every record schema optbench has written still read, report, gate and make baselines.

The files in ``tests/data/runs`` are real runs, saved by the suite as it stood when it wrote that
schema; ``tests/data/runs/README.md`` gives the commands that made them.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from optbench.baseline import main as baseline
from optbench.gate import main as gate
from optbench.report import main as report
from optbench.results import load, read_baseline

RUNS = Path(__file__).parent / "data" / "runs"
SCHEMAS = {1: RUNS / "schema1.json", 2: RUNS / "schema2.json"}
MATRIX_IDS = {f"{name}-bs{bs}-cpu" for name in ("sgd", "adam") for bs in (10, 100)}
IDS = MATRIX_IDS | {"seed.adam-bs1-cpu", "seed.sgd-bs1-cpu"}


def saved(schema: int) -> dict:
    return json.loads(SCHEMAS[schema].read_text())


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_saved_run_of_each_schema_reads_as_saved(schema):
    data = saved(schema)
    assert data["optbench_schema"] == schema  # the fixture is what its name says
    frame = load([SCHEMAS[schema]]).frame.set_index("id")
    assert set(frame.index) == IDS
    for bench in data["benchmarks"]:
        info, row = bench["extra_info"], frame.loc[bench["extra_info"]["id"]]
        for field in ("final_mse", "slope", "intercept", "epoch_mse"):
            assert row[field] == info[field], field
        assert row.status == info["status"] == "converged"
        assert row["median"] == bench["stats"]["median"] and row.schema == schema and row.passed
        if schema == 1:  # before seeds: one seed, whose finals are the record's own
            assert (row.seeds, row.seed_runs, row.pass_rate) == (1, "one", 1.0)
            assert row.seed_final_mse == [info["final_mse"]] and row.epoch_mse_q50 == info["epoch_mse"]
        else:
            assert (row.seeds, row.seed_runs, row.pass_rate) == (info["seeds"], info["seed_runs"], 1.0)
            assert row.seed_final_mse == info["seed_final_mse"]
            assert row.excess_mse_q95 == info["excess_mse_q95"]


def test_the_first_seed_of_a_schema_2_run_is_the_schema_1_run_and_the_gate_says_so(capsys):
    one, many = saved(1), saved(2)
    # First a check of the fixtures themselves (the code at two commits made the same first seeds),
    # then of the code: the gate reads both schemas and finds nothing changed.
    firsts = {bench["extra_info"]["id"]: bench["extra_info"] for bench in one["benchmarks"]}
    for bench in many["benchmarks"]:
        info = bench["extra_info"]
        changed = {key for key in firsts[info["id"]] if firsts[info["id"]][key] != info[key]}
        assert changed == {"seconds"}, info["id"]
    seeds = {bench["extra_info"]["id"]: bench["extra_info"]["seeds"] for bench in many["benchmarks"]}
    assert {seeds[id_] for id_ in MATRIX_IDS} == {32}
    for baseline_run, candidate_run in ((SCHEMAS[1], SCHEMAS[2]), (SCHEMAS[2], SCHEMAS[1])):
        status = gate(["--baseline", str(baseline_run), "--candidate", str(candidate_run)])
        out, err = capsys.readouterr()
        assert status == 0, out + err
        assert out.strip() == "no scenario changed"


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_baseline_made_from_a_saved_run_of_each_schema_passes_that_run(schema, tmp_path, capsys):
    path = tmp_path / "baseline.json"
    assert baseline([str(SCHEMAS[schema]), "--out", str(path)]) == 0
    assert set(read_baseline(path)) == IDS
    status = gate(["--baseline", str(path), "--candidate", str(SCHEMAS[schema])])
    out, err = capsys.readouterr()
    assert status == 0, out + err


def test_the_report_takes_runs_of_both_schemas_at_once(tmp_path, capsys):
    out = tmp_path / "report"
    assert report([str(SCHEMAS[1]), str(SCHEMAS[2]), "--out", str(out)]) == 0, capsys.readouterr().err
    table = pd.read_csv(out / "summary.csv")
    assert sorted(table.run) == ["schema1"] * len(IDS) + ["schema2"] * len(IDS)
    seeds = table.set_index(["run", "id"]).seeds
    assert seeds["schema1"].eq(1).all()
    assert seeds["schema2"][sorted(MATRIX_IDS)].eq(32).all()
