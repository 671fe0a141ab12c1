"""Packaged JSON data files read through a pydantic model: any damage is one line naming the file and the fix.

The tuned settings (``optbench.tune.settings``) and the calibrated verdicts
(``optbench.optimizers.verdicts``) are such files.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from optbench.messages import one_line

M = TypeVar("M", bound=BaseModel)


class DataFileError(ValueError):
    """A data file that cannot be used; the message, one line, names it and the fix."""


def parse(
    text: str, path: Path, model: type[M], *, marker: str, what: str, fix: str, error: type[DataFileError]
) -> M:
    """``text`` (``path``'s JSON) as a ``model``, checked.

    Args:
        text: the file's text.
        path: where it was read, for messages.
        model: the pydantic model of such a file.
        marker: the key only such a file has (``optbench_tuned``): missing, the file is foreign.
        what: what such a file is, for messages (``tuned-settings file``).
        fix: how to make a good one (``regenerate it with python -m optbench.tune --out``).
        error: the ``DataFileError`` subclass to raise.
    """
    try:
        return model.model_validate_json(text)
    except ValidationError as caught:
        errors = caught.errors()
        first = errors[0]
        if first["type"] == "json_invalid":
            raise error(f"{path}: not valid JSON ({first['msg']}); {fix}") from None
        # Looked for among all the errors: pydantic orders them by field or by input, as releases differ.
        if any(found["loc"] == (marker,) and found["type"] == "missing" for found in errors):
            raise error(f"{path}: not an optbench {what} (no {marker!r} key); {fix}") from None
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise error(f"{path}: {where}: {one_line(first['msg'], 160)}; {fix}") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to be a {what}") from None


def read(path: Path, model: type[M], *, marker: str, what: str, fix: str, error: type[DataFileError]) -> M:
    """The file at ``path`` as a ``model``, checked (arguments as ``parse``'s).

    Raises:
        DataFileError: (``error``) missing, unreadable, not JSON, or not a valid such file.
    """
    try:
        mode = path.stat().st_mode
    except OSError as caught:
        raise error(f"{path}: cannot be read ({caught.strerror}); check the path") from None
    if not stat.S_ISREG(mode):
        raise error(f"{path}: not a regular file (a folder, FIFO or device); pass a {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as caught:
        raise error(f"{path}: cannot be read ({caught.strerror}); check its permissions") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file; pass a {what} (JSON)") from None
    return parse(text, path, model, marker=marker, what=what, fix=fix, error=error)
