"""Property-based tests: real saved runs, damaged field by field and structurally, against every reader.

For report, gate and baseline, whatever the damage: no exception escapes ``main`` (a bad file is
exit 2 with one line per problem, never a traceback), nothing is written when it exits 2, and the
gate never exits 0 on a candidate that is worse than its baseline.

Hypothesis runs derandomised (the same cases on every run, so never flaky) with no example
database; the README's "What optbench promises" gives the number of cases and their time.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optbench.baseline import main as baseline_main
from optbench.gate import main as gate_main
from optbench.report import main as report_main

RUNS = Path(__file__).resolve().parent / "data" / "runs"
BASELINE = Path(__file__).resolve().parents[1] / "baselines" / "cpu.json"
SOURCES = {path.name: json.loads(path.read_text()) for path in (*sorted(RUNS.glob("schema*.json")), BASELINE)}
"""Real runs of every schema, and the committed (schema-2) baseline file."""
MATRIX = ("sgd-bs10-cpu", "sgd-bs100-cpu", "adam-bs10-cpu", "adam-bs100-cpu")

REMOVE = object()
"""A damage that removes the field."""
JUNK = (
    REMOVE, None, "", "32", "a string", "two\nlines", "x" * 100_000, -5, 0, 2**70, 1e308, math.inf, True, [],
    [1, "x"], {}, {"a": 1}, math.nan,
)  # fmt: skip
"""What a field may become: the wrong kind, an empty, multi-line or huge one, out of range, or gone."""

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    # capsys is read (and so emptied) after every call: one fixture serves every example.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def records(data: dict) -> list[dict]:
    """The optbench records of a run or baseline document, in order (they are edited in place)."""
    if "scenarios" in data:
        return data["scenarios"]
    return [bench["extra_info"] for bench in data["benchmarks"]]


def put(target: dict | list, key: Any, value: Any) -> None:
    if value is REMOVE:
        del target[key]
    else:
        target[key] = copy.deepcopy(value)


@st.composite
def damaged_field(draw: st.DrawFn, data: dict) -> dict:
    """One field of one record made something else: junk, removed, or one list entry damaged."""
    data = copy.deepcopy(data)
    record = draw(st.sampled_from(records(data)))
    key = draw(st.sampled_from(sorted(record)))
    if isinstance(record[key], list) and record[key] and draw(st.booleans()):
        values = record[key]
        how = draw(st.sampled_from(["entry", "shorter", "longer"]))
        if how == "entry":
            put(values, draw(st.integers(0, len(values) - 1)), draw(st.sampled_from(JUNK[1:])))
        elif how == "shorter":
            del values[-1]
        else:
            values.append(values[-1])
    else:
        put(record, key, draw(st.sampled_from(JUNK)))
    return data


@st.composite
def damaged_structure(draw: st.DrawFn, data: dict) -> dict:
    """A part of the file's outer shape made something else (machine_info, stats, a benchmark...)."""
    data = copy.deepcopy(data)
    parts = [key for key in ("machine_info", "commit_info", "datetime", "optbench_schema") if key in data]
    parts += ["benchmarks" if "benchmarks" in data else "scenarios"]
    where = draw(st.sampled_from([*parts, "one benchmark", "stats", "a statistic"]))
    junk = draw(st.sampled_from(JUNK))
    benches = data.get("benchmarks")
    if where in parts:
        put(data, where, junk)
    elif where == "one benchmark":
        items = benches if benches is not None else data["scenarios"]
        put(items, draw(st.integers(0, len(items) - 1)), junk if junk is not REMOVE else None)
    elif benches is not None:
        bench = draw(st.sampled_from(benches))
        if where == "stats":
            put(bench, "stats", junk)
        else:
            put(bench["stats"], draw(st.sampled_from(sorted(bench["stats"]))), junk)
    return data


def damaged(data: dict) -> st.SearchStrategy[dict]:
    return st.one_of(damaged_field(data), damaged_structure(data))


@st.composite
def damaged_text(draw: st.DrawFn) -> bytes:
    """A file that is not a run at all: cut short, nested deeply, not UTF-8, or empty."""
    text = json.dumps(SOURCES[draw(st.sampled_from(sorted(SOURCES)))]).encode()
    how = draw(st.sampled_from(["cut", "deep", "bytes", "empty", "huge number"]))
    if how == "cut":
        return text[: draw(st.integers(0, len(text) - 1))]
    if how == "deep":
        depth = draw(st.sampled_from([1_000, 100_000]))
        return b"[" * depth + b"]" * depth
    if how == "huge number":  # more digits than Python's int() reads
        return b'{"benchmarks": [' + b"1" * 5000 + b"]}"
    if how == "bytes":
        return text[:100] + b"\xff\xfe" + text[100:]
    return b""


def run_tool(main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture) -> int:
    """``main(argv)``: any exception escaping it fails the test; stderr holds no traceback."""
    status = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    for line in err.splitlines():
        assert line.startswith("python -m optbench."), line  # every line its tool's, one per problem
    return status


def check_every_tool(path: Path, original: Path, folder: Path, capsys: pytest.CaptureFixture) -> None:
    """Report, baseline and gate (both ways) on a damaged file: documented exits, nothing written on 2."""
    out = folder / "report"
    status = run_tool(report_main, [str(path), "--out", str(out)], capsys)
    assert status in (0, 2)
    assert out.exists() == (status == 0)
    target = folder / "baseline.json"
    status = run_tool(baseline_main, [str(path), "--out", str(target), "--allow-failed"], capsys)
    assert status in (0, 2)
    assert target.exists() == (status == 0)
    for argv in (
        ["--baseline", original, "--candidate", path],
        ["--baseline", path, "--candidate", original],
    ):
        status = run_tool(gate_main, [*map(str, argv), "--allow-failed-baseline"], capsys)
        assert status in (0, 1, 2)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no temporaries


@FUZZ
@given(
    st.sampled_from(sorted(SOURCES)).flatmap(lambda name: st.tuples(st.just(name), damaged(SOURCES[name])))
)
def test_a_damaged_run_is_a_documented_exit_never_a_traceback(capsys, case):
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        original, path = folder / "original" / name, folder / "damaged.json"
        original.parent.mkdir()
        original.write_text(json.dumps(SOURCES[name]))
        path.write_text(json.dumps(data))
        check_every_tool(path, original, folder, capsys)


@settings(FUZZ, max_examples=20)
@given(damaged_text())
def test_a_file_that_is_not_json_is_exit_2_and_writes_nothing(capsys, text):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        original, path = folder / "original" / "schema3.json", folder / "damaged.json"
        original.parent.mkdir()
        original.write_text(json.dumps(SOURCES["schema3.json"]))
        path.write_bytes(text)
        check_every_tool(path, original, folder, capsys)


def regress(data: dict, scenario: str, how: str) -> None:
    """Makes ``scenario`` of a schema-3 run worse than it was, in one of the ways the gate must catch."""
    benches = data["benchmarks"]
    index = next(i for i, bench in enumerate(benches) if bench["extra_info"]["id"] == scenario)
    info = benches[index]["extra_info"]
    if how == "removed":
        del benches[index]
        return
    if how in ("diverged", "forged"):
        seeds = info["seeds"]
        info["seed_status"] = ["converged"] + ["diverged"] * (seeds - 1)
        for key in [
            key for key, value in info.items() if key.startswith("seed_") and isinstance(value, list)
        ]:
            info[key] = info[key][:1] + [None] * (seeds - 1)
        info.update(status="diverged", pass_rate=1 / seeds)
        if how == "forged":  # and it says it was expected to
            info["expected_failure"] = "the candidate says it may fail"
    elif how == "first seed":
        info["excess_loss"] += 1.0
        info["final_loss"] += 1.0
    elif how == "quantile":
        info["excess_loss_q95"] += 1.0


@settings(FUZZ, max_examples=200)
@given(
    scenario=st.sampled_from(MATRIX),
    how=st.sampled_from(["removed", "diverged", "forged", "first seed", "quantile"]),
    damage=st.lists(st.sampled_from(["field", "structure"]), max_size=2),
    data=st.data(),
)
def test_the_gate_never_passes_a_worse_candidate(capsys, scenario, how, damage, data):
    candidate = copy.deepcopy(SOURCES["schema3.json"])
    regress(candidate, scenario, how)
    for kind in damage:  # anything else may be damaged as well, except the regressed scenario
        benches = candidate.get("benchmarks")
        if not isinstance(benches, list) or not all(
            isinstance(b, dict) and isinstance(b.get("extra_info"), dict) for b in benches
        ):
            break  # damaged past recognition already
        others = copy.deepcopy(candidate)
        others["benchmarks"] = [b for b in others["benchmarks"] if b["extra_info"].get("id") != scenario]
        regressed = [b for b in candidate["benchmarks"] if b["extra_info"].get("id") == scenario]
        strategy = damaged_field(others) if kind == "field" else damaged_structure(others)
        changed = data.draw(strategy)
        if isinstance(changed.get("benchmarks"), list):
            changed["benchmarks"] = changed["benchmarks"] + regressed
        candidate = changed
    with tempfile.TemporaryDirectory() as tmp:
        baseline, path = Path(tmp) / "baseline.json", Path(tmp) / "candidate.json"
        baseline.write_text(json.dumps(SOURCES["schema3.json"]))
        path.write_text(json.dumps(candidate))
        status = run_tool(gate_main, ["--baseline", str(baseline), "--candidate", str(path)], capsys)
        assert status != 0, (scenario, how, damage)
