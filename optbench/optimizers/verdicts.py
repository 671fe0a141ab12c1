"""Calibrated verdicts as data: on how many seeds each default case of the suite converged.

``optbench/optimizers/verdicts.json`` is written by the suite's calibration
(``python -m optbench.calibrate --suite --out docs/calibration-suite.md --verdicts
optbench/optimizers/verdicts.json``): every optimizer of the default registry x problem of the
suite x batch size, trained at its tuned settings over ``--seeds`` seeds (128). The registry
reads it: a case that converged on every seed must converge, one that converged on none is a
strict expected failure, and one in between a non-strict one; each failure's reason quotes the
measured pass rate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from optbench import datafile
from optbench.datafile import DataFileError
from optbench.files import write_atomic

VERDICTS_FILE = Path(__file__).resolve().parent / "verdicts.json"
"""The committed verdicts of the default registry on the suite, shipped with the package."""

COMMAND = (
    "python -m optbench.calibrate --suite --out docs/calibration-suite.md "
    "--verdicts optbench/optimizers/verdicts.json"
)
"""The command that regenerates the committed file (and its table, docs/calibration-suite.md)."""

_Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.]*$", max_length=200)]


class VerdictError(DataFileError):
    """A verdicts file that cannot be used; the message, one line, names it and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Verdict(_Model):
    """One case: the seeds it trained and on how many of them it converged."""

    optimizer: _Name
    problem: _Name
    batch_size: Annotated[int, Field(ge=1)]
    dtype: Literal["float32"]
    seeds: Annotated[int, Field(ge=1)]
    converged: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _counted(self) -> Verdict:
        if self.converged > self.seeds:
            raise ValueError(f"converged on {self.converged} of {self.seeds} seeds: more than it trained")
        return self

    @property
    def key(self) -> tuple[str, str, int, str]:
        """``(optimizer, problem, batch size, dtype)``: one verdict per key in a file."""
        return (self.optimizer, self.problem, self.batch_size, self.dtype)

    def expected_failure(self) -> tuple[str, bool] | None:
        """``(reason, strict)`` for the matrix: ``None`` where every seed converged."""
        if self.converged == self.seeds:
            return None
        reason = (
            f"converged on {self.converged} of {self.seeds} seeds at its tuned lr (docs/calibration-suite.md)"
        )
        return reason, self.converged == 0


class VerdictFile(_Model):
    """The whole file: its format, the command that made it, the torch it ran on, and every case."""

    optbench_verdicts: Literal[1]
    command: str
    torch: Annotated[str, Field(max_length=100)]
    verdicts: list[Verdict]

    @model_validator(mode="after")
    def _once(self) -> VerdictFile:
        keys = [verdict.key for verdict in self.verdicts]
        if len(set(keys)) != len(keys):
            twice = next(key for key in keys if keys.count(key) > 1)
            raise ValueError(f"the case {'/'.join(map(str, twice))} is given twice")
        return self

    def find(self, optimizer: str, problem: str, batch_size: int, dtype: str = "float32") -> Verdict | None:
        """The verdict of that key, or ``None``."""
        for verdict in self.verdicts:
            if verdict.key == (optimizer, problem, batch_size, dtype):
                return verdict
        return None


_FILE = {
    "marker": "optbench_verdicts",
    "what": "verdicts file",
    "fix": f"regenerate it with {COMMAND}",
    "error": VerdictError,
}


def read(path: Path = VERDICTS_FILE) -> VerdictFile:
    """The verdicts file at ``path``, validated.

    Raises:
        VerdictError: missing, unreadable, not JSON, or not a valid verdicts file.
    """
    return datafile.read(path, VerdictFile, **_FILE)


def dumps(verdicts: Sequence[Verdict], command: str, torch_version: str) -> str:
    """The file's text: one verdict per line of the list, keys in the declared order."""
    document = VerdictFile(optbench_verdicts=1, command=command, torch=torch_version, verdicts=list(verdicts))
    return json.dumps(document.model_dump(mode="json"), indent=1) + "\n"


def write(path: Path, verdicts: Sequence[Verdict], command: str, torch_version: str) -> None:
    """Writes the file whole or not at all (``optbench.files.write_atomic``).

    Raises:
        OutputError: the folder is missing or not writable.
    """
    write_atomic(
        path, dumps(verdicts, command, torch_version), fix="pass --verdicts a file in a writable folder"
    )
