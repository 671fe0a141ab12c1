"""Saved runs of every record schema optbench has written still read, report, gate and make baselines.

The files in ``tests/data/runs`` are real runs, saved by the suite as it stood when it wrote that
schema; ``tests/data/runs/README.md`` gives the commands that made them.
"""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from optbench import LINE
from optbench.baseline import main as baseline
from optbench.gate import main as gate
from optbench.record import METADATA, SCHEMA_VERSION, TARGET, fields, metric_table
from optbench.report import main as report
from optbench.results import load, read_baseline

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "tests" / "data" / "runs"
SCHEMAS = {schema: RUNS / f"schema{schema}.json" for schema in (1, 2, 3, 4)}
LEGACY = (1, 2)
"""The schemas before the problem's metrics were the record's: all of the line."""
CPU_BASELINE = ROOT / "baselines" / "cpu.json"
MATRIX_IDS = {f"{name}-bs{bs}-cpu" for name in ("sgd", "adam") for bs in (10, 100)}
IDS = MATRIX_IDS | {"seed.adam-bs1-cpu", "seed.sgd-bs1-cpu"}
OLD_FIELDS = {
    "final_mse", "optimum_mse", "epoch_mse", "optimum_slope", "optimum_intercept", "target_slope",
    "target_intercept", "seed_final_mse", "seed_optimum_mse", "excess_mse",
    *(f"{name}_q{q}" for name in ("excess_mse", "epoch_mse") for q in (10, 50, 90, 95)),
}  # fmt: skip
"""Fields of schemas 1 and 2 that schema 3 renamed or dropped: none may reach the frame."""
LATER = {field.name for field in TARGET}
"""Schema 3's optional fields declared after ``schema3.json`` was saved (time to target): it lacks them."""
DEFAULTS = {field.name: field.default for field in METADATA if field.since == 4}
"""The fields schema 4 added (``schedule``, ``elementwise``): older records lack them, read as these."""
SINCE_4 = set(DEFAULTS)
QUANTILES = (10, 50, 90, 95)
QUANTILED = {"excess_mse": "excess_loss", "slope_error": "slope_error", "intercept_error": "intercept_error"}
"""Schema 2's quantile fields by stem, and today's: ``excess_mse_q95`` became ``excess_loss_q95``."""


def saved(schema: int) -> dict:
    return json.loads(SCHEMAS[schema].read_text())


def assert_reads_as_saved(row: pd.Series, info: dict) -> None:
    """``row`` (a schema-3 row) holds the first seed of ``info`` (a schema 1 or 2 record) as saved."""
    assert row.problem == "line" and row.metrics == LINE.table
    for field in ("optimizer", "batch_size", "device", "epochs", "seed", "steps", "expected_failure"):
        assert row[field] == info[field], field
    assert row["dtype"] == info.get("dtype", "float32")  # schema 1 ran float32 only
    renamed = {"final_loss": "final_mse", "reference_loss": "optimum_mse", "epoch_loss": "epoch_mse"}
    for new, old in {**renamed, "slope": "slope", "intercept": "intercept"}.items():
        assert row[new] == info[old], new
    # Derived as the line derives them today, exactly (not approximately) from the saved numbers.
    assert row.excess_loss == info["final_mse"] - info["optimum_mse"]
    assert row.slope_error == abs(info["slope"] - info["target_slope"])
    assert row.intercept_error == abs(info["intercept"] - info["target_intercept"])
    if "optimum_slope" in info:  # a run; a schema-2 baseline kept no optimum's parameters
        apart = (info["slope"] - info["optimum_slope"], info["intercept"] - info["optimum_intercept"])
        assert row.distance == math.hypot(*apart)
    else:
        assert math.isnan(row.distance)


def assert_seeds_read_as_saved(row: pd.Series, info: dict) -> None:
    """The multi-seed fields of ``row`` are those of ``info`` (schema 2), renamed or derived."""
    assert (row.seeds, row.seed_runs, row.pass_rate) == (info["seeds"], info["seed_runs"], info["pass_rate"])
    assert row.seed_final_loss == info["seed_final_mse"]
    assert row.seed_reference_loss == info["seed_optimum_mse"]
    assert row.seed_slope == info["seed_slope"] and row.seed_intercept == info["seed_intercept"]
    assert row.seed_status == info["seed_status"]
    finals = zip(info["seed_final_mse"], info["seed_optimum_mse"], strict=True)
    assert row.seed_excess_loss == [final - optimum for final, optimum in finals]
    assert row.seed_slope_error == [abs(value - info["target_slope"]) for value in info["seed_slope"]]
    errors = [abs(value - info["target_intercept"]) for value in info["seed_intercept"]]
    assert row.seed_intercept_error == errors
    for old, new in QUANTILED.items():
        for q in QUANTILES:
            assert row[f"{new}_q{q}"] == info[f"{old}_q{q}"], f"{new}_q{q}"


@pytest.mark.parametrize("schema", LEGACY)
def test_a_saved_run_of_each_schema_reads_as_saved(schema):
    data = saved(schema)
    assert data["optbench_schema"] == schema  # the fixture is what its name says
    loaded = load([SCHEMAS[schema]])
    assert loaded.warnings == []
    assert not OLD_FIELDS & set(loaded.frame.columns)
    frame = loaded.frame.set_index("id")
    assert set(frame.index) == IDS
    for bench in data["benchmarks"]:
        info, row = bench["extra_info"], frame.loc[bench["extra_info"]["id"]]
        assert_reads_as_saved(row, info)
        assert row.step_loss == info["step_loss"]
        assert row.status == info["status"] == "converged"
        assert row["median"] == bench["stats"]["median"] and row.schema == schema and row.passed
        if schema == 1:  # before seeds: one seed, whose finals are the record's own
            assert (row.seeds, row.seed_runs, row.pass_rate) == (1, "one", 1.0)
            assert row.seed_final_loss == [info["final_mse"]] and row.epoch_loss_q50 == info["epoch_mse"]
            assert row.seed_reference_loss == [info["optimum_mse"]] and row.seed_status == ["converged"]
            for name in ("excess_loss", "slope_error", "intercept_error"):
                assert row[f"seed_{name}"] == [row[name]], name
                assert all(row[f"{name}_q{q}"] == row[name] for q in QUANTILES), name
        else:
            assert_seeds_read_as_saved(row, info)
            assert row.pass_rate == 1.0
            assert row.seed_distance[0] == row.distance  # the one seed whose reference it kept
            assert all(math.isnan(value) for value in row.seed_distance[1:])
            for q in (10, 50, 90):
                assert row[f"epoch_loss_q{q}"] == info[f"epoch_mse_q{q}"], q


def _as_read(value: object) -> object:
    """A saved value as the reader gives it: JSON's null (a number that was not finite) as NaN."""
    if value is None:
        return math.nan
    if isinstance(value, list):
        return [_as_read(item) for item in value]
    return value


def _same(a: object, b: object) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.mark.parametrize("schema", (3, 4))
def test_a_saved_run_of_schema_3_or_later_reads_every_declared_field_as_saved(schema):
    data = saved(schema)
    assert data["optbench_schema"] == schema
    later = LATER | SINCE_4 if schema == 3 else set()
    loaded = load([SCHEMAS[schema]])
    assert loaded.warnings == []
    frame = loaded.frame.set_index("id")
    assert set(frame.index) == IDS
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        row = frame.loc[info["id"]]
        declared = fields(metric_table(info))
        # The saved record is the declared schema, but for the optional fields declared since.
        assert set(info) == set(declared) - later, info["id"]
        assert row.metrics == metric_table(info)  # the table, parsed once on reading
        for name in declared:
            if name not in ("id", "metrics"):
                absent = [] if name.startswith("seed_") else math.nan  # a later field's, unsaved
                absent = DEFAULTS.get(name, absent)  # schema 4's fields read as their defaults
                expected = _as_read(info[name]) if name in info else absent
                assert _same(row[name], expected), (info["id"], name)
        assert row["median"] == bench["stats"]["median"] and row.schema == schema and row.passed
        assert row.status == "converged" and row.seed_status == ["converged"] * row.seeds


def test_the_schemas_agree_on_the_line_seed_for_seed(capsys):
    """The line behaves exactly as before: each schema's run, gated against the next, at zero tolerance."""
    for before, after in ((1, 3), (2, 3), (3, 2), (3, 4), (4, 3)):
        status = gate(
            ["--baseline", str(SCHEMAS[before]), "--candidate", str(SCHEMAS[after]), "--max-growth", "all=0"]
        )
        out, err = capsys.readouterr()
        assert status == 0, out + err
        assert out.strip() == "no scenario changed", (before, after)
    first = {bench["extra_info"]["id"]: bench["extra_info"] for bench in saved(2)["benchmarks"]}
    for bench in saved(3)["benchmarks"]:
        info, old = bench["extra_info"], first[bench["extra_info"]["id"]]
        assert info["seed_final_loss"] == old["seed_final_mse"] and info["seed_slope"] == old["seed_slope"]
        assert info["epoch_loss"] == old["epoch_mse"] and info["step_loss"] == old["step_loss"]


def test_the_committed_cpu_baseline_of_schema_2_reads_with_every_row_passed():
    data = json.loads(CPU_BASELINE.read_text())
    assert data["kind"] == "optbench-baseline" and data["optbench_schema"] == 2  # as committed
    loaded = load([CPU_BASELINE])
    assert loaded.warnings == []
    assert not OLD_FIELDS & set(loaded.frame.columns)
    frame = loaded.frame.set_index("id")
    entries = {entry["id"]: entry for entry in data["scenarios"]}
    assert len(frame) == len(entries) and set(frame.index) == set(entries)
    assert frame.passed.all(), sorted(frame.index[~frame.passed])
    assert set(read_baseline(CPU_BASELINE)) == set(entries)
    for name, info in entries.items():
        row = frame.loc[name]
        assert row.schema == 2 and row.status == info["status"] == "converged", name
        assert_reads_as_saved(row, info)
        assert row.epoch_loss == info["epoch_mse"]  # a baseline keeps the loss before training only
        assert_seeds_read_as_saved(row, info)


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
    assert json.loads(path.read_text())["optbench_schema"] == SCHEMA_VERSION  # written in today's schema
    kept = read_baseline(path)
    assert set(kept) == IDS
    run = load([SCHEMAS[schema]]).frame.set_index("id")
    for scenario, entry in kept.items():  # the gate below passes only because these are the run's
        for metric in LINE.table:
            assert _same(entry[metric.name], run.at[scenario, metric.name]), (scenario, metric.name)
            assert _same(entry[f"seed_{metric.name}"], run.at[scenario, f"seed_{metric.name}"]), scenario
    status = gate(["--baseline", str(path), "--candidate", str(SCHEMAS[schema])])
    out, err = capsys.readouterr()
    assert status == 0, out + err


def test_the_report_takes_runs_of_every_schema_at_once(tmp_path, capsys):
    out = tmp_path / "report"
    paths = [str(path) for path in SCHEMAS.values()]
    assert report([*paths, "--out", str(out)]) == 0, capsys.readouterr().err
    table = pd.read_csv(out / "summary.csv")
    assert sorted(table.run) == sorted(f"schema{schema}" for schema in SCHEMAS for _ in IDS)
    seeds = table.set_index(["run", "id"]).seeds
    assert seeds["schema1"].eq(1).all()
    assert seeds["schema2"][sorted(MATRIX_IDS)].eq(32).all()
    assert seeds["schema3"][sorted(MATRIX_IDS)].eq(32).all()
    assert seeds["schema4"][sorted(MATRIX_IDS)].eq(32).all()
