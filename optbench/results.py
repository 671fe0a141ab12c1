"""Saved pytest-benchmark runs in, one flat DataFrame out: a row per scenario per run.

Every problem with a file becomes a ``ResultsError`` whose message names the file
and the fix; ``load`` skips a bad file among good ones and reports it, and fails
only when nothing usable is left.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from optbench import spread
from optbench.checks import failures
from optbench.record import SCHEMA_VERSION, finite_or_none

BENCHMARKS_DIR = Path(".benchmarks")
"""Where ``pytest --benchmark-autosave`` saves runs, one folder per machine."""

_SAVE_NUMBER = re.compile(r"^(\d{4})_")
_SAVE_HINT = "run `pytest benchmarks --benchmark-autosave` first, or pass result files"
_NEEDED = ("id", "optimizer", "batch_size", "device", "final_mse", "optimum_mse", "status", "epoch_mse")
_FLOATS = ("final_mse", "slope", "intercept", "optimum_mse", "target_slope", "target_intercept")
_SEED_LISTS = ("seed_final_mse", "seed_optimum_mse", "seed_slope", "seed_intercept")
_QUANTILES = tuple(spread.name(metric, q) for metric in spread.ERRORS for q in spread.QUANTILES)
_BANDS = tuple(spread.name("epoch_mse", q) for q in spread.BAND)

COLUMNS = (
    "run", "save", "machine", "commit", "date", "torch", "test", "id", "optimizer", "batch_size",
    "device", "dtype", "seed", "epochs", "steps", "min", "median", "mean", "stddev", "rounds", "final_mse",
    "optimum_mse", "excess_mse", "slope", "intercept", "target_slope", "target_intercept", "status",
    "passed", "expected_failure", "epoch_mse", "step_loss", "step_loss_stride", "schema", "seeds",
    "seed_runs", "pass_rate", *_QUANTILES, *_BANDS, *_SEED_LISTS, "seed_status",
)  # fmt: skip
"""The DataFrame's columns, in order. A record saved before schema 2 reads as one seed."""


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
    if path.is_file():
        return path
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
    """The optbench rows of one saved pytest-benchmark run.

    A record whose final numbers are NaN or missing without being marked
    diverged is read as diverged; that, and every diverged record, adds a line
    to ``warnings``.

    Raises:
        ResultsError: the file cannot be read, is not JSON, is not a pytest-benchmark
            run, or holds no optbench records.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ResultsError(f"{path}: cannot be read ({error.strerror}); check its permissions") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not a text file; pass a pytest-benchmark JSON file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ResultsError(
            f"{path}: not valid JSON (line {error.lineno}: {error.msg}); the file may be truncated, "
            "re-run the benchmarks to save it again"
        ) from None
    if isinstance(data, dict) and data.get("kind") == BASELINE_KIND:
        data = _as_run(data, path)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ResultsError(
            f"{path}: not a pytest-benchmark run (no 'benchmarks' list); pass files saved by "
            "--benchmark-autosave or --benchmark-json"
        )
    machine = data.get("machine_info") or {}
    commit = data.get("commit_info") or {}
    run = {
        "run": path.stem,
        "save": save_number(path),
        "machine": str(machine.get("node", "")),
        "commit": str(commit.get("id") or "")[:12],
        "date": pd.to_datetime(data.get("datetime"), utc=True, errors="coerce"),
        "torch": str(machine.get("torch_version", "")),
        "schema": _integer(data.get("optbench_schema")),
    }
    rows = [_row(run, bench) for bench in data["benchmarks"] if _is_optbench(bench)]
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
    if not rows:
        raise ResultsError(
            f"{path}: a pytest-benchmark run with no optbench records; pass runs saved by "
            "`pytest benchmarks --benchmark-autosave`"
        )
    return rows


def _is_optbench(bench: Any) -> bool:
    info = bench.get("extra_info") if isinstance(bench, dict) else None
    return isinstance(info, dict) and all(key in info for key in _NEEDED)


def _number(value: Any) -> float:
    """A float, NaN for anything missing or not a number (the JSON null of a diverged run)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _integer(value: Any) -> int:
    """An int, 0 for anything missing or not a finite number."""
    number = _number(value)
    return int(number) if math.isfinite(number) else 0


def _curve(values: Any) -> list[float]:
    return [_number(value) for value in values] if isinstance(values, list) else []


def _row(run: dict[str, Any], bench: dict[str, Any]) -> dict[str, Any]:
    info, stats = bench["extra_info"], bench.get("stats") or {}
    row = {**run, "test": bench.get("fullname", bench.get("name", ""))}
    for key in ("id", "optimizer", "device", "status"):
        row[key] = str(info[key])
    row["dtype"] = str(info.get("dtype", "float32"))
    row["expected_failure"] = str(info.get("expected_failure", ""))
    for key in ("batch_size", "seed", "epochs", "steps", "step_loss_stride"):
        row[key] = _integer(info.get(key))
    for key in ("min", "median", "mean", "stddev"):
        row[key] = _number(stats.get(key))
    row["rounds"] = _integer(stats.get("rounds"))
    for key in _FLOATS:
        row[key] = _number(info.get(key))
    row["epoch_mse"] = _curve(info.get("epoch_mse"))
    row["step_loss"] = _curve(info.get("step_loss"))
    row["excess_mse"] = row["final_mse"] - row["optimum_mse"]
    _read_seeds(row, info)
    finite = all(math.isfinite(row[key]) for key in ("final_mse", "slope", "intercept"))
    # The first seed's numbers may be missing only when that seed diverged; otherwise the
    # record does not account for them, and all of it reads as diverged.
    row["repaired"] = not finite and row["seed_status"][0] != "diverged"
    if row["repaired"]:
        row["status"] = row["seed_status"][0] = "diverged"
        if row["seeds"] == 1:
            row["pass_rate"] = 0.0
    check = {key: finite_or_none(row[key]) for key in _FLOATS}
    check.update({key: [finite_or_none(v) for v in row[key]] for key in _SEED_LISTS})
    check.update(
        id=row["id"],
        steps=row["steps"],
        seed=row["seed"],
        dtype=row["dtype"],
        seeds=row["seeds"],
        seed_status=row["seed_status"],
        epoch_mse=[finite_or_none(v) for v in row["epoch_mse"]],
    )
    row["passed"] = not row["repaired"] and not failures(check)
    return row


def _read_seeds(row: dict[str, Any], info: dict[str, Any]) -> None:
    """The multi-seed fields; a record without them (schema 1) is one seed, its own spread."""
    lists = {key: info.get(key) for key in (*_SEED_LISTS, "seed_status")}
    count = _integer(info.get("seeds"))
    if count < 1 or not all(isinstance(value, list) and len(value) == count for value in lists.values()):
        row.update(seeds=1, seed_runs="one", pass_rate=float(row["status"] == "converged"))
        for key in _SEED_LISTS:
            row[key] = [row[key.removeprefix("seed_")]]
        row["seed_status"] = [row["status"]]
        row.update({key: _number(value) for key, value in spread.error_quantiles(row).items()})
        for key in _BANDS:
            row[key] = list(row["epoch_mse"])
        return
    row.update(seeds=count, seed_runs=str(info.get("seed_runs", "")))
    row["pass_rate"] = _number(info.get("pass_rate"))
    for key in _SEED_LISTS:
        row[key] = _curve(lists[key])
    row["seed_status"] = [str(value) for value in lists["seed_status"]]
    for key in _QUANTILES:
        row[key] = _number(info.get(key))
    for key in _BANDS:
        row[key] = _curve(info.get(key))


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
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return Loaded(frame=frame, warnings=warnings)


BASELINE_KIND = "optbench-baseline"
"""The ``kind`` of a metrics-only baseline file (no timings, no curves)."""

_BASELINE_FIELDS = (
    "id", "optimizer", "batch_size", "device", "dtype", "seed", "epochs", "steps", "status", "final_mse",
    "optimum_mse", "slope", "intercept", "target_slope", "target_intercept", "expected_failure",
    "seeds", "seed_runs", "pass_rate", *_QUANTILES, *_SEED_LISTS, "seed_status",
)  # fmt: skip


def baseline_document(frame: pd.DataFrame, machine_info: dict[str, Any]) -> dict[str, Any]:
    """A run's final metrics as a small baseline file: no timings and no curves.

    Args:
        frame: one run's rows, from ``load``.
        machine_info: the run's provenance, kept so a later comparison can warn.
    """
    scenarios = []
    for row in frame.sort_values("id").to_dict("records"):
        entry = {key: row[key] for key in _BASELINE_FIELDS}
        for key, value in entry.items():
            if isinstance(value, float) and not math.isfinite(value):
                entry[key] = None
            elif key in _SEED_LISTS:
                entry[key] = [finite_or_none(item) for item in value]
        entry["epoch_mse"] = [row["epoch_mse"][0]] if row["epoch_mse"] else []
        scenarios.append(entry)
    return {
        "kind": BASELINE_KIND,
        "optbench_schema": SCHEMA_VERSION,
        "source": str(frame.run.iloc[0]),
        "machine_info": machine_info,
        "scenarios": scenarios,
    }


def _as_run(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A baseline file in the shape of a saved run, so every reader takes both."""
    scenarios = data.get("scenarios")
    if not isinstance(scenarios, list):
        raise ResultsError(f"{path}: a baseline file without its 'scenarios' list; write it again")
    return {
        "machine_info": data.get("machine_info") or {},
        "optbench_schema": data.get("optbench_schema"),
        "benchmarks": [{"name": str(entry.get("id", "")), "extra_info": entry} for entry in scenarios],
    }


def read_baseline(path: Path) -> dict[str, dict[str, Any]]:
    """A saved run or a baseline file as records by scenario id.

    Raises:
        ResultsError: as ``read_run``, or the path does not exist.
    """
    if not path.is_file():
        raise ResultsError(f"{path}: no such file; pass a saved run or a baseline file")
    return {row["id"]: row for row in read_run(path)}
