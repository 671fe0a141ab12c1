"""The gate decides, not the candidate: numbers of the wrong type, forged expected failures, repeated ids.

Every case starts from a real saved run (``tests/data/runs/schema3.json``) and changes it as a
careless user or an attacker would.
"""

import copy
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from optbench.baseline import main as baseline_main
from optbench.gate import expected_by_registry, main, verdicts
from optbench.optimizers.registry import OPTIMIZERS, Case, Registry
from optbench.record.checks import DEFAULT_TOLERANCES
from optbench.report import main as report_main
from optbench.results import load

RUN = Path(__file__).resolve().parent / "data" / "runs" / "schema3.json"
MATRIX = ("sgd-bs10-cpu", "sgd-bs100-cpu", "adam-bs10-cpu", "adam-bs100-cpu")


def saved() -> dict:
    return json.loads(RUN.read_text())


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def diverge(info: dict, keep: int = 1) -> None:
    """All but ``keep`` seeds of the record diverged; its 0.95 quantile of the excess loss is 10 higher."""
    seeds = info["seeds"]
    info["seed_status"] = ["converged"] * keep + ["diverged"] * (seeds - keep)
    for key, values in list(info.items()):
        if key.startswith("seed_") and key != "seed_status" and isinstance(values, list):
            info[key] = values[:keep] + [None] * (seeds - keep)
    info["status"] = "diverged"
    info["pass_rate"] = keep / seeds
    info["excess_loss_q95"] += 10


def worse() -> dict:
    """The saved run with 31 of 32 seeds of every matrix case diverged."""
    data = saved()
    for bench in data["benchmarks"]:
        if bench["extra_info"]["id"] in MATRIX:
            diverge(bench["extra_info"])
    return data


def gate(capsys, baseline: Path, candidate: Path, *args: str) -> tuple[int, str, str]:
    status = main(["--baseline", str(baseline), "--candidate", str(candidate), *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_worse_run_fails_the_gate(tmp_path, capsys):
    status, out, _ = gate(capsys, RUN, write(tmp_path, "worse.json", worse()))
    assert status == 1
    assert all(f"{case}" in out for case in MATRIX)


@pytest.mark.parametrize(
    ("field", "value"), [("seeds", "32"), ("seeds", 32.0), ("excess_loss_q95", "0.1"), ("pass_rate", True)]
)
def test_a_number_of_the_wrong_type_is_an_error_not_a_skipped_check(tmp_path, capsys, field, value):
    data = worse()
    data["benchmarks"][0]["extra_info"][field] = value
    path = write(tmp_path, "worse.json", data)
    status, _, err = gate(capsys, RUN, path)
    assert status == 2
    (line,) = err.strip().splitlines()[-1:]
    assert str(path) in line and "sgd-bs10-cpu" in line and field in line, line
    assert line.count("\n") == 0


def test_the_candidates_own_expected_failure_marks_excuse_nothing(tmp_path, capsys):
    data = worse()
    for bench in data["benchmarks"]:
        bench["extra_info"]["expected_failure"] = "the candidate says so"
    path = write(tmp_path, "forged.json", data)
    status, out, _ = gate(capsys, RUN, path)
    assert status == 1
    assert out.count("REGRESSED") == len(MATRIX) + 2  # the seed profile's cases are newly marked too
    # Accepting new expected failures accepts only those the gate's registry knows of.
    status, out, _ = gate(capsys, RUN, path, "--accept-new-expected-failures")
    assert status == 1
    assert out.count("REGRESSED") == len(MATRIX)
    assert "the gate's registry does not" in out or "newly an expected failure" in out


def with_xfail(name: str, batch_size: int) -> Registry:
    """The built-in registry in which one case became an expected failure."""
    info = OPTIMIZERS[name]
    cases = {**info.cases, ("line", batch_size): Case({"lr": 0.01}, fails="newly hard")}
    changed = type(info)(**{**info.__dict__, "cases": cases})
    return OPTIMIZERS.with_entries([changed], replace=True)


def test_a_case_newly_expected_to_fail_fails_the_gate_unless_accepted(tmp_path):
    registry = with_xfail("sgd", 10)
    assert (
        expected_by_registry(
            {"optimizer": "sgd", "problem": "line", "batch_size": 10, "dtype": "float32"}, registry
        )
        == "newly hard"
    )
    baseline = load([RUN]).frame
    data = saved()
    data["benchmarks"][0]["extra_info"]["expected_failure"] = "newly hard"
    diverge(data["benchmarks"][0]["extra_info"])
    candidate = load([write(tmp_path, "c.json", data)]).frame
    table = verdicts(baseline, candidate, DEFAULT_TOLERANCES, registry=registry)
    assert list(table[table.gated].id) == ["sgd-bs10-cpu"]
    assert "newly an expected failure (newly hard)" in table.regression.iloc[0]
    accepted = verdicts(
        baseline, candidate, DEFAULT_TOLERANCES, registry=registry, accept_new_expected_failures=True
    )
    assert not accepted.gated.any()
    assert list(accepted.id) == ["sgd-bs10-cpu"]  # still listed as a change


def test_a_case_the_registry_no_longer_excuses_is_gated_although_the_baseline_marked_it(tmp_path):
    data = saved()
    for bench in data["benchmarks"]:
        bench["extra_info"]["expected_failure"] = "once hard"
    baseline = load([write(tmp_path, "b.json", data)]).frame
    candidate = load([write(tmp_path, "c.json", worse())]).frame
    table = verdicts(baseline, candidate, DEFAULT_TOLERANCES)
    assert set(table[table.gated].id) == set(MATRIX)


def test_an_added_optimizer_unknown_to_the_gate_keeps_the_baselines_marks(tmp_path):
    def renamed(data: dict, mark: str) -> dict:
        for bench in data["benchmarks"]:
            info = bench["extra_info"]
            info["optimizer"] = "lion"
            info["id"] = info["id"].replace("sgd", "lion").replace("adam", "lion2")
            info["expected_failure"] = mark
        return data

    baseline = load([write(tmp_path, "b.json", renamed(saved(), "lion is hard"))]).frame
    candidate = load([write(tmp_path, "c.json", renamed(worse(), "lion is hard"))]).frame
    assert not verdicts(baseline, candidate, DEFAULT_TOLERANCES).gated.any()
    unmarked = load([write(tmp_path, "u.json", renamed(saved(), ""))]).frame
    table = verdicts(unmarked, candidate, DEFAULT_TOLERANCES)
    assert table.gated.all() and len(table) == len(candidate)  # four regressed, and all six newly marked
    accepted = verdicts(unmarked, candidate, DEFAULT_TOLERANCES, accept_new_expected_failures=True)
    assert not accepted.gated.any()


def test_a_case_the_registry_excuses_only_under_other_keys_is_still_gated(tmp_path, capsys):
    # The id stays; the batch size and dtype become those of a case the registry lets fail.
    data = worse()
    info = data["benchmarks"][2]["extra_info"]
    assert info["id"] == "adam-bs10-cpu"
    info.update(batch_size=1, dtype="bfloat16", expected_failure="claimed")
    status, out, _ = gate(capsys, RUN, write(tmp_path, "moved.json", data), "--accept-new-expected-failures")
    assert status == 1
    assert "REGRESSED: missing from the candidate" in out


def test_a_case_missing_from_the_candidate_is_gated_whatever_the_baseline_marked(tmp_path, capsys):
    base = saved()
    base["benchmarks"][2]["extra_info"]["expected_failure"] = "once hard"
    candidate = saved()
    del candidate["benchmarks"][2]
    status, out, _ = gate(capsys, write(tmp_path, "b.json", base), write(tmp_path, "c.json", candidate))
    assert status == 1
    assert "adam-bs10-cpu" in out and "REGRESSED: missing from the candidate" in out


def test_a_case_new_in_the_candidate_is_listed_not_gated_whatever_it_claims(tmp_path):
    data = worse()
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        info["id"] += "-new"
        info["batch_size"] += 1
        info["expected_failure"] = "claimed"
    table = verdicts(load([RUN]).frame, load([write(tmp_path, "c.json", data)]).frame, DEFAULT_TOLERANCES)
    added = table[table.id.str.endswith("-new")]
    assert len(added) == 6 and not added.gated.any() and not added.newly_expected.any()
    assert table[~table.id.str.endswith("-new")].gated.all()  # the baseline's own cases are missing


def test_an_id_of_two_lines_or_a_huge_number_is_one_line(tmp_path, capsys):
    data = saved()
    data["benchmarks"][0]["extra_info"]["id"] = "two\nlines"
    assert main(["--baseline", str(RUN), "--candidate", str(write(tmp_path, "id.json", data))]) == 2
    (path := tmp_path / "huge.json").write_text('{"benchmarks": [' + "1" * 5000 + "]}")
    assert main(["--baseline", str(RUN), "--candidate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "id: string should match pattern" in err and "not a saved run (Exceeds the limit" in err
    assert all(line.startswith("python -m optbench.gate: ") for line in err.splitlines())


def test_pytest_refuses_to_save_a_run_over_its_own_baseline(pytester):
    pytester.makeconftest('pytest_plugins = ("optbench.plugin",)')
    pytester.makepyfile(
        test_matrix=(Path(__file__).resolve().parents[1] / "optbench/benchmarks/test_matrix.py").read_text()
    )
    baseline = pytester.path / "baseline.json"
    baseline.write_text(RUN.read_text())
    result = pytester.runpytest(
        f"--optbench-baseline={baseline}", f"--benchmark-json={baseline}", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --benchmark-json: *is the input*; save the run elsewhere"])
    if baseline.stat().st_size:  # pytest-benchmark before 5.3 empties the file as it parses the option
        assert baseline.read_text() == RUN.read_text()


def duplicated() -> dict:
    data = saved()
    data["benchmarks"].append(copy.deepcopy(data["benchmarks"][0]))
    return data


def test_a_scenario_twice_in_one_run_is_one_line_and_exit_2_in_every_tool(tmp_path, capsys):
    path = write(tmp_path, "twice.json", duplicated())
    for tool, argv in (
        (main, ["--baseline", str(RUN), "--candidate", str(path)]),
        (main, ["--baseline", str(path), "--candidate", str(RUN)]),
        (report_main, [str(path), "--out", str(tmp_path / "report")]),
        (baseline_main, [str(path), "--out", str(tmp_path / "baseline.json")]),
    ):
        assert tool(argv) == 2
        err = capsys.readouterr().err
        assert "sgd-bs10-cpu appears 2 times in one run" in err
        assert "Traceback" not in err
    assert not (tmp_path / "report").exists() and not (tmp_path / "baseline.json").exists()


def test_a_bad_file_among_good_ones_is_skipped_with_its_line(tmp_path):
    data = saved()
    del data["benchmarks"][2]["extra_info"]["epoch_loss_q50"]
    loaded = load([RUN, write(tmp_path, "bad.json", data)])
    assert set(loaded.frame.run) == {"schema3"}
    (warning,) = [w for w in loaded.warnings if w.startswith("skipped")]
    assert "bad.json: adam-bs10-cpu: epoch_loss_q50: field required" in warning


@pytest.mark.timeout(60)  # a regression would otherwise hang here, not fail
def test_a_fifo_is_refused_without_being_opened(tmp_path, capsys):
    fifo = tmp_path / "run.json"
    os.mkfifo(fifo)
    # Opening a FIFO for reading blocks until a writer comes: that no call here hangs is the test.
    assert report_main([str(fifo), "--out", str(tmp_path / "out")]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert main(["--baseline", str(fifo), "--candidate", str(RUN)]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_json_nested_deeply_is_one_line(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert report_main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "nested too deeply" in err and "Traceback" not in err


@pytest.mark.parametrize("part", ["machine_info", "commit_info", "stats"])
def test_a_part_that_is_not_an_object_is_one_line(tmp_path, capsys, part):
    data = saved()
    if part == "stats":
        data["benchmarks"][1]["stats"] = "fast"
    else:
        data[part] = "a string"
    assert report_main([str(write(tmp_path, "r.json", data)), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert part in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_saved_run_reads_the_same_after_validation():
    frame = load([RUN]).frame
    raw = {b["extra_info"]["id"]: b["extra_info"] for b in saved()["benchmarks"]}
    for row in frame.to_dict("records"):
        info = raw[row["id"]]
        assert row["seeds"] == info["seeds"] and row["seed_status"] == info["seed_status"]
        assert row["excess_loss_q95"] == info["excess_loss_q95"]
        assert pd.Series(row["epoch_loss"]).equals(pd.Series(info["epoch_loss"], dtype=float))
