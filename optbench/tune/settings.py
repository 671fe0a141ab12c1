"""Tuned settings as data: one JSON file of every case's sweep, its chosen lr and its window.

``optbench/optimizers/tuned.json`` holds the default registry's sweep of the line, made by
``python -m optbench.tune --tune-seeds auto --out optbench/optimizers/tuned.json``;
``tests/test_tuned.py`` shows each registry learning rate lies in a measured window. The file is validated on
load (``read``): a damaged or foreign file is one line naming it and the fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from optbench import datafile
from optbench.datafile import DataFileError
from optbench.files import write_atomic
from optbench.problems import PROBLEMS
from optbench.record import NAME
from optbench.scenario import DTYPES
from optbench.schedules import CONSTANT, SCHEDULES
from optbench.tune.choose import RULE, Choice, Point, choose

FORMAT = 1
"""The version of the file's layout, in its ``optbench_tuned`` key."""

TUNED_FILE = Path(__file__).resolve().parent.parent / "optimizers" / "tuned.json"
"""The committed sweep of the default registry on every problem, shipped with the package."""

_Name = Annotated[str, Field(pattern=NAME, max_length=200)]
_Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
_Excess = Annotated[float | None, Field(allow_inf_nan=False)]


class TunedError(DataFileError):
    """A tuned-settings file that cannot be used; the message, one line, names it and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class PointRow(_Model):
    """One learning rate's outcome, as the file holds it (a non-finite excess loss is ``null``)."""

    lr: _Rate
    pass_rate: _Share
    excess_median: _Excess
    excess_q95: _Excess
    diverged: _Share
    seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)]

    def point(self) -> Point:
        """As the rule takes it: ``None`` becomes ``inf``."""
        inf = math.inf
        return Point(
            self.lr,
            self.pass_rate,
            inf if self.excess_median is None else self.excess_median,
            inf if self.excess_q95 is None else self.excess_q95,
            self.diverged,
            self.seconds,
        )


class CaseRow(_Model):
    """One optimizer x problem x batch size x dtype: its sweep and what the rule chose."""

    optimizer: _Name
    problem: _Name
    batch_size: Annotated[int, Field(ge=1)]
    dtype: Literal[tuple(DTYPES)]  # type: ignore[valid-type]
    schedule: Literal[tuple(SCHEDULES)] = CONSTANT  # type: ignore[valid-type]
    """The learning-rate schedule it was swept under (``optbench.schedules``); files before schedules
    were swept at the constant one and leave it out."""
    device: _Name
    hyperparams: Annotated[str, Field(max_length=10_000)]
    """The other keyword arguments the sweep held fixed, as a JSON object (the record's ``hyperparams``)."""
    lr: _Rate
    window: tuple[_Rate, _Rate] | None
    tunability: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    pass_rate: _Share
    grid: Annotated[list[_Rate], Field(min_length=1)]
    seeds: Annotated[int, Field(ge=1)]
    epochs: Annotated[int, Field(ge=1)]
    how: Literal["vectorised", "point by point"]
    torch: Annotated[str, Field(max_length=100)]
    date: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    points: Annotated[list[PointRow], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> CaseRow:
        if [row.lr for row in self.points] != self.grid:
            raise ValueError("its points' learning rates are not its grid's")
        choice = choose([row.point() for row in self.points])
        if (choice.lr, choice.window) != (self.lr, self.window) or abs(
            choice.tunability - self.tunability
        ) > 1e-3:  # the file keeps it to three decimals
            raise ValueError(
                f"its lr, window and tunability are not what the rule chooses from its points "
                f"(lr {choice.lr:g}, tunability {choice.tunability:.3f})"
            )
        return self

    @property
    def key(self) -> tuple[str, str, int, str, str]:
        """``(optimizer, problem, batch size, dtype, schedule)``: one case per key in a file."""
        return (self.optimizer, self.problem, self.batch_size, self.dtype, self.schedule)

    def choice(self) -> Choice:
        """What the rule chose."""
        return Choice(self.lr, self.window, self.tunability)


class TunedFile(_Model):
    """The whole file: its format, the rule, the command that made it, and every case."""

    optbench_tuned: Literal[1]
    rule: str
    command: str
    cases: list[CaseRow]

    @model_validator(mode="after")
    def _once(self) -> TunedFile:
        keys = [case.key for case in self.cases]
        for key in keys:
            if keys.count(key) > 1:
                raise ValueError(f"the case {'/'.join(map(str, key))} is given twice")
        return self

    def find(
        self, optimizer: str, problem: str, batch_size: int, dtype: str = "float32", schedule: str = CONSTANT
    ) -> CaseRow | None:
        """The case of that key, or ``None``."""
        for case in self.cases:
            if case.key == (optimizer, problem, batch_size, dtype, schedule):
                return case
        return None


def describe(row: CaseRow) -> str:
    """One case's outcome on one line: ``adam-bs10-cpu: lr 0.3162, window 0.1-0.3162 (0.50 decades) ...``."""
    suffix = "" if row.problem == PROBLEMS.default.name else f"-{row.problem}"
    suffix += "" if row.schedule == CONSTANT else f"-{row.schedule}"
    suffix += "" if row.dtype == "float32" else f"-{row.dtype}"
    full = row.problem in PROBLEMS and PROBLEMS[row.problem].data is None  # no batch-size axis
    batch = "full" if full else f"bs{row.batch_size}"
    name = f"{row.optimizer}-{batch}-{row.device.replace(':', '')}{suffix}"
    if row.window is None:
        verdict = f"no lr passes; best pass rate {row.pass_rate:.2f} at lr {row.lr:g}"
    else:
        verdict = (
            f"lr {row.lr:g}, window {row.window[0]:g}-{row.window[1]:g} ({row.tunability:.2f} decades), "
            f"pass rate {row.pass_rate:.2f}"
        )
    return f"{name}: {verdict} [{len(row.grid)} lr x {row.seeds} seeds, {row.how}, {row.seconds:.1f} s]"


def point_row(point: Point) -> PointRow:
    """``point`` as the file holds it."""

    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return PointRow(
        lr=point.lr,
        pass_rate=point.pass_rate,
        excess_median=finite(point.excess_median),
        excess_q95=finite(point.excess_q95),
        diverged=point.diverged,
        seconds=point.seconds,
    )


_FILE = {
    "marker": "optbench_tuned",
    "what": "tuned-settings file",
    "fix": "regenerate it with python -m optbench.tune --out",
    "error": TunedError,
}


def parse(text: str, path: Path) -> TunedFile:
    """``text`` (a file's JSON) as a tuned-settings file, checked.

    Raises:
        TunedError: it is not one, with the first problem found.
    """
    return datafile.parse(text, path, TunedFile, **_FILE)


def read(path: Path = TUNED_FILE) -> TunedFile:
    """The tuned-settings file at ``path``, validated.

    Raises:
        TunedError: missing, unreadable, not JSON, or not a valid tuned-settings file.
    """
    return datafile.read(path, TunedFile, **_FILE)


def dumps(cases: Sequence[CaseRow], command: str) -> str:
    """The file's text: one case per block, keys in the declared order, two-space indents."""
    document = TunedFile(optbench_tuned=FORMAT, rule=RULE, command=command, cases=list(cases))
    return json.dumps(document.model_dump(mode="json"), indent=2) + "\n"


def write(path: Path, cases: Sequence[CaseRow], command: str) -> None:
    """Writes the file whole or not at all (``optbench.files.write_atomic``).

    Raises:
        OutputError: the folder is missing or not writable.
    """
    write_atomic(path, dumps(cases, command), fix="pass --out a file in a writable folder")
