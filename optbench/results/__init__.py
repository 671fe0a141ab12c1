"""Saved pytest-benchmark runs in, one flat DataFrame out: a row per scenario per run.

Every problem with a file becomes a ``ResultsError`` whose message names the file
and the fix; ``load`` skips a bad file among good ones and reports it, and fails
only when nothing usable is left.
"""

from __future__ import annotations

import json
import math
import re
import stat
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from optbench.problems import PROBLEMS, Metric
from optbench.problems.line import SCHEMA2_NEEDED, from_schema2
from optbench.record import (
    BAND,
    CURVES,
    METADATA,
    PASSED,
    SCHEMA_VERSION,
    SEED_TARGET,
    SOURCE,
    TARGET,
    TIMING,
    bounded,
    fields,
    metric_table,
    quantile_field,
    quantile_fields,
    scalar_fields,
    schema,
    seed_field,
    seed_fields,
    spread,
)
from optbench.record.checks import failures
from optbench.record.numbers import finite_or_none

BENCHMARKS_DIR = Path(".benchmarks")
"""Where ``pytest --benchmark-autosave`` saves runs, one folder per machine."""

_SAVE_NUMBER = re.compile(r"^(\d{4})_")
_SAVE_HINT = "run `optbench --benchmark-autosave` first, or pass result files"
_NEEDED = ("id", "optimizer", "batch_size", "device", "status", "metrics", "final_loss", "epoch_loss")

RUN_COLUMNS = tuple(field.name for field in SOURCE)
"""Where each row comes from: the saved run and its test (``optbench.record.SOURCE``)."""

TIMING_COLUMNS = tuple(field.name for field in TIMING)
"""pytest-benchmark's statistics of the timed rounds, in seconds (NaN where not timed)."""


def columns(tables: Iterable[tuple[Metric, ...]]) -> tuple[str, ...]:
    """The DataFrame's columns for rows with these metric tables, in order.

    The run's columns, the timings, every declared record field of every table (``optbench.record``;
    a field two tables share once, where it first appears), and ``passed`` (the bounds check,
    judged again on load).
    """
    record = dict.fromkeys(name for table in tables for name in fields(table))
    return (*RUN_COLUMNS, *TIMING_COLUMNS, *record, PASSED.name)


class ResultsError(Exception):
    """A results file or folder that cannot be used; the message names it and the fix."""


@dataclass
class Loaded:
    """What ``load`` found: the rows, and one warning per file it skipped or repaired."""

    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def save_number(path: Path) -> str:
    """``"0003"`` for an autosaved ``0003_<commit>_<date>.json``, else ``""``."""
    match = _SAVE_NUMBER.match(path.name)
    return match.group(1) if match else ""


def newest_run(root: Path = BENCHMARKS_DIR) -> Path:
    """The newest autosaved run in any machine folder under ``root``.

    Raises:
        ResultsError: there is no such folder, or no saved run in it.
    """
    if not root.is_dir():
        raise ResultsError(f"{root}: no saved runs here; {_SAVE_HINT}")
    runs = [path for path in root.glob("*/*.json") if save_number(path)]
    if not runs:
        raise ResultsError(f"{root}: no autosaved runs in it; {_SAVE_HINT}")
    return max(runs, key=lambda path: (save_number(path), path.stat().st_mtime))


def find_run(spec: str, root: Path = BENCHMARKS_DIR) -> Path:
    """A run given as a file, or as a save number such as ``0003`` (or ``3``) under ``root``.

    Raises:
        ResultsError: no such file, or no saved run with that number.
    """
    path = Path(spec)
    if path.exists() and not path.is_dir():
        return path  # a FIFO or device too: read_run refuses it without opening it
    if spec.isdigit():
        number = f"{int(spec):04d}"
        matches = sorted(root.glob(f"*/{number}_*.json"))
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(str(match) for match in matches)
            raise ResultsError(f"save {number} exists for several machines ({names}); pass the file instead")
        raise ResultsError(f"save {number}: no {root}/*/{number}_*.json; list {root} for the saved runs")
    raise ResultsError(f"{spec}: no such file; pass a results JSON file or a save number such as 0003")


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given, folders as every ``*.json`` below them, sorted.

    Raises:
        ResultsError: a path does not exist, or a folder holds no JSON files.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("*.json"))
            if not found:
                raise ResultsError(f"{path}: the folder holds no .json results; pass a folder of saved runs")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise ResultsError(f"{path}: no such file or folder; check the path")
    return files


def read_run(path: Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """The optbench rows of one saved pytest-benchmark run (or baseline file), validated.

    Every record is checked against the declared schema (``optbench.record.schema``) before a row
    is made of it. A record whose final numbers are missing without being marked diverged is
    read as diverged; that, and every diverged or stalled record, adds a line to ``warnings``.
    Statuses read as saved: a record of schema 3 or older says ``diverged`` also of a run that
    ended anywhere above its start (``optbench.record.SCHEMA_VERSION``).

    Raises:
        ResultsError: the file is not a regular file, cannot be read, is not JSON, is not a
            pytest-benchmark run, holds no optbench records, holds one that does not match the
            schema (the message names the scenario and the field), or holds a scenario twice.
    """
    data = _read_json(path)
    baseline = isinstance(data, dict) and data.get("kind") == BASELINE_KIND
    if not baseline and not (isinstance(data, dict) and "benchmarks" in data):
        raise ResultsError(
            f"{path}: not a pytest-benchmark run (no 'benchmarks' list); pass files saved by "
            "--benchmark-autosave or --benchmark-json"
        )
    try:
        if baseline:
            schema.check_document(data, schema.BaselineFile)
            data = _as_run(data)
        else:
            schema.check_document(data, schema.RunFile)
    except schema.SchemaError as error:
        raise ResultsError(f"{path}: {error}; {_hint(baseline)}") from None
    machine, commit = data.get("machine_info") or {}, data.get("commit_info") or {}
    version = data.get("optbench_schema")
    run = {
        "run": path.stem,
        "save": save_number(path),
        "machine": str(machine.get("node", "")),
        "commit": str(commit.get("id") or "")[:12],
        "date": pd.to_datetime(data.get("datetime"), utc=True, errors="coerce"),
        "torch": str(machine.get("torch_version", "")),
        "schema": version or 0,
    }
    rows = []
    for index, bench in enumerate(data["benchmarks"]):
        info = _optbench_record(bench)
        if info is None:
            continue
        scenario = _scenario_name(bench, info, index)
        try:
            rows.append(_row(run, bench, info, version, baseline))
        except schema.SchemaError as error:
            raise ResultsError(f"{path}: {scenario}: {error}; {_hint(baseline)}") from None
    if not rows:
        raise ResultsError(
            f"{path}: a pytest-benchmark run with no optbench records; pass runs saved by "
            "`optbench --benchmark-autosave`"
        )
    counts = Counter(row["id"] for row in rows)  # counted once: a run may hold thousands of scenarios
    twice = sorted(scenario for scenario, count in counts.items() if count > 1)
    if twice:  # ids are checked to be one line (optbench.record.schema); cut for a readable one
        shown = twice[0] if len(twice[0]) <= 80 else twice[0][:77] + "..."
        raise ResultsError(
            f"{path}: scenario {shown} appears {counts[twice[0]]} times in one run, so it cannot be "
            "compared; run each scenario once (no repeated --optbench-* values)"
        )
    for row in rows:
        repaired = row.pop("repaired")
        if warnings is None:
            continue
        if repaired:
            warnings.append(f"{path}: {row['id']} holds NaN or missing final numbers; read as diverged")
        elif row["status"] == "diverged":
            warnings.append(
                f"{path}: {row['id']} diverged (drawn up to the divergence); check its learning rate"
            )
        elif row["status"] == "stalled":
            warnings.append(
                f"{path}: {row['id']} stalled (its loss hardly moved); check its learning rate, its dtype "
                "and that its optimizer steps"
            )
    return rows


_RUN_HINT = "re-run the benchmarks to save it again"


def _hint(baseline: bool) -> str:
    return "write it again with python -m optbench.baseline" if baseline else _RUN_HINT


def _read_json(path: Path) -> Any:
    """The parsed JSON of a regular file; FIFOs, devices and folders are refused without being opened."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise ResultsError(f"{path}: cannot be read ({error.strerror}); check the path") from None
    if not stat.S_ISREG(mode):
        raise ResultsError(
            f"{path}: not a regular file (a folder, FIFO or device); pass a saved run's JSON file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ResultsError(f"{path}: cannot be read ({error.strerror}); check its permissions") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not a text file; pass a pytest-benchmark JSON file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ResultsError(
            f"{path}: not valid JSON (line {error.lineno}: {error.msg}); the file may be truncated, "
            "re-run the benchmarks to save it again"
        ) from None
    except ValueError as error:  # an integer past Python's digit limit, say
        raise ResultsError(
            f"{path}: not a saved run ({str(error)[:80]}); pass a file saved by pytest-benchmark"
        ) from None
    except RecursionError:
        raise ResultsError(
            f"{path}: JSON nested too deeply to be a saved run; pass a file saved by pytest-benchmark"
        ) from None


def _optbench_record(bench: Any) -> dict[str, Any] | None:
    """A benchmark's ``extra_info`` when it is an optbench record, else ``None`` (another plug-in's).

    One is when it holds at least two of the fields every optbench record of its schema has, so a
    record with one of them lost or damaged is still checked, and fails, rather than passed over.
    """
    if not isinstance(bench, dict):
        return None
    info = bench.get("extra_info")
    if not isinstance(info, dict):
        return None
    marks = max(sum(key in info for key in _NEEDED), sum(key in info for key in SCHEMA2_NEEDED))
    return info if marks >= 2 else None


def _scenario_name(bench: dict[str, Any], info: dict[str, Any], index: int) -> str:
    for name in (info.get("id"), bench.get("name")):
        if isinstance(name, str) and name:
            name = name if name.isprintable() else repr(name)  # a message stays one line
            return name if len(name) <= 80 else name[:77] + "..."
    return f"benchmark {index + 1}"


def _number(value: float | None) -> float:
    """A validated metric or timing as a float: ``None`` (not finite when saved) is NaN."""
    return math.nan if value is None else float(value)


def _curve(values: list[float | None] | None) -> list[float]:
    return [math.nan if value is None else float(value) for value in values or ()]


_DEFAULTS = {field.name: field.default for field in METADATA if field.default is not None}
_DEFAULTS["problem"] = PROBLEMS.default.name  # records before schema 3 were all of it
_EMPTY = {str: "", int: 0, float: math.nan, bool: False}


def _row(
    run: dict[str, Any], bench: dict[str, Any], info: dict[str, Any], version: int | None, baseline: bool
) -> dict[str, Any]:
    """One row of the DataFrame from a record, after checking it against the schema."""
    old = "final_loss" not in info
    if old:
        try:
            info = from_schema2(info)
        except (TypeError, ValueError) as error:  # lists of unequal lengths, say
            raise schema.SchemaError(f"cannot be read as today's record ({error})") from None
    known = version if isinstance(version, int) and 3 <= version <= SCHEMA_VERSION else SCHEMA_VERSION
    schema.check_record(info, version=min(version or 1, 2) if old else known, baseline=baseline)
    stats = bench.get("stats")
    schema.check_stats(stats)
    stats = stats or {}
    metrics = metric_table(info)
    row = {**run, "test": str(bench.get("fullname") or bench.get("name") or "")}
    for declared in TIMING:
        value = stats.get(declared.name)
        row[declared.name] = (value or 0) if declared.kind is int else _number(value)
    for declared in METADATA:
        value = info.get(declared.name)
        missing = _DEFAULTS.get(declared.name, _EMPTY.get(declared.kind))
        row[declared.name] = missing if value is None else value
    row["pass_rate"] = _number(info.get("pass_rate"))
    row["seconds"] = _number(info.get("seconds"))
    row["metrics"] = metrics  # parsed once: the tables, gate and baseline read it from the row
    for name in scalar_fields(metrics):
        row[name] = _number(info.get(name))
    for declared in CURVES:
        row[declared.name] = _curve(info.get(declared.name))
    for declared in TARGET:  # optional: a record saved before them has none (None, or no seeds')
        value = info.get(declared.name)
        row[declared.name] = _curve(value) if declared.kind is list else _number(value)
    _read_seeds(row, info, metrics)
    judged = bounded(metrics)
    finite = math.isfinite(row["final_loss"]) and all(math.isfinite(row[m.name]) for m in judged)
    # The first seed's numbers may be missing only when that seed diverged; otherwise the
    # record does not account for them, and all of it reads as diverged.
    row["repaired"] = not finite and row["seed_status"][0] != "diverged"
    if row["repaired"]:
        row["status"] = row["seed_status"][0] = "diverged"
        if row["seeds"] == 1:
            row["pass_rate"] = 0.0
    row["passed"] = not row["repaired"] and not failures(row)  # the checks take NaN for None
    return row


def _read_seeds(row: dict[str, Any], info: dict[str, Any], metrics: Sequence[Any]) -> None:
    """The multi-seed fields; a record without them (schema 1) is one seed, its own spread."""
    names = seed_fields(metrics)
    if info.get("seeds") is None or not all(isinstance(info.get(key), list) for key in names):
        row.update(seeds=1, seed_runs="one", pass_rate=float(row["status"] == "converged"))
        for metric in metrics:
            row[seed_field(metric.name)] = [row[metric.name]]
        row["seed_status"] = [row["status"]]
        row.update({key: _number(value) for key, value in spread.metric_quantiles(row, metrics).items()})
        for q in BAND:
            row[quantile_field("epoch_loss", q)] = list(row["epoch_loss"])
        return
    for key in names[:-1]:
        row[key] = _curve(info[key])
    row["seed_status"] = list(info["seed_status"])
    for key in quantile_fields(metrics):
        row[key] = _number(info.get(key))


def load(paths: Sequence[Path]) -> Loaded:
    """Reads every run in ``paths`` into one DataFrame, skipping unusable files with a warning.

    Raises:
        ResultsError: nothing usable is left; the message names each file's problem.
    """
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for path in paths:
        try:
            rows.extend(read_run(path, warnings))
        except ResultsError as error:
            warnings.append(f"skipped {error}")
    if not rows:
        problems = "; ".join(w.removeprefix("skipped ") for w in warnings) or "no files given"
        raise ResultsError(f"no usable optbench results: {problems}")
    tables = dict.fromkeys(row["metrics"] for row in rows)  # each row's table, parsed as it was read
    frame = pd.DataFrame(rows, columns=list(columns(tables)))
    return Loaded(frame=frame, warnings=warnings)


def tables_of(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> tuple[tuple[Metric, ...], ...]:
    """The distinct metric tables of the rows (or of a DataFrame's ``metrics``), in the order first met."""
    if isinstance(rows, pd.DataFrame):
        return tuple(dict.fromkeys(rows["metrics"]))
    return tuple(dict.fromkeys(metric_table(row) for row in rows))


def metrics_of(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> tuple[Metric, ...]:
    """Every metric of the rows' tables, each once, in the order first met.

    Where tables differ on a metric (one problem bounds ``distance``, another only reports it),
    the first bound and the first tolerance any table gives stand: the union says which columns
    a table may hold, while each record is judged by its own table.
    """
    union: dict[str, Metric] = {}
    for table in tables_of(rows):
        for metric in table:
            known = union.setdefault(metric.name, metric)
            union[metric.name] = replace(
                known,
                bound=known.bound if known.bound is not None else metric.bound,
                tolerance=known.tolerance if known.tolerance is not None else metric.tolerance,
            )
    return tuple(union.values())


BASELINE_KIND = "optbench-baseline"
"""The ``kind`` of a metrics-only baseline file (no timings, no curves)."""

_NOT_IN_BASELINES = tuple(field.name for field in (*METADATA, *TARGET, *CURVES) if not field.baseline)
"""Timings, set-up and curves: a baseline keeps final metrics (and the loss before training)."""

_COUNTS = {field.name for field in TARGET if int in (field.kind, field.items)}
"""Steps, which the reader gives as floats (NaN where none): a baseline writes them whole again."""


def _count(value: Any) -> Any:
    """A step count as saved: an int, ``None`` for NaN, each entry of a list so."""
    if isinstance(value, list):
        return [_count(item) for item in value]
    return None if value is None or value != value else int(value)


def baseline_document(frame: pd.DataFrame, machine_info: dict[str, Any]) -> dict[str, Any]:
    """A run's final metrics as a small baseline file: no timings and no curves.

    Args:
        frame: one run's rows, from ``load``.
        machine_info: the run's provenance, kept so a later comparison can warn.
    """
    scenarios = []
    for row in frame.sort_values("id").to_dict("records"):
        metrics = metric_table(row)
        entry: dict[str, Any] = {}
        for key in (name for name in fields(metrics) if name not in _NOT_IN_BASELINES):
            value = row[key]
            if key in SEED_TARGET and not value:  # a run saved before them: left out, as there
                continue
            if key == "metrics":
                value = [metric.as_dict() for metric in metrics]
            elif key in _COUNTS:
                value = _count(value)
            elif isinstance(value, float):
                value = finite_or_none(value)
            elif isinstance(value, list):
                value = [finite_or_none(item) if isinstance(item, float) else item for item in value]
            entry[key] = value
        entry["epoch_loss"] = [finite_or_none(row["epoch_loss"][0])] if row["epoch_loss"] else []
        scenarios.append(entry)
    return {
        "kind": BASELINE_KIND,
        "optbench_schema": SCHEMA_VERSION,
        "source": str(frame.run.iloc[0]),
        "machine_info": machine_info,
        "scenarios": scenarios,
    }


def _as_run(data: dict[str, Any]) -> dict[str, Any]:
    """A baseline file (already checked) in the shape of a saved run, so every reader takes both."""
    return {
        "machine_info": data.get("machine_info") or {},
        "optbench_schema": data["optbench_schema"],
        "benchmarks": [
            {"name": str(entry.get("id", "")) if isinstance(entry, dict) else "", "extra_info": entry}
            for entry in data["scenarios"]
        ],
    }


def read_baseline(path: Path) -> dict[str, dict[str, Any]]:
    """A saved run or a baseline file as records by scenario id.

    Raises:
        ResultsError: as ``read_run``, or the path does not exist.
    """
    if not path.exists():
        raise ResultsError(f"{path}: no such file; pass a saved run or a baseline file")
    return {row["id"]: row for row in read_run(path)}
