"""Writing output files so that a reader never sees half of one."""

from __future__ import annotations

import os
from pathlib import Path


class OutputError(Exception):
    """An output cannot be written; the message names the path and the fix."""


def write_atomic(path: Path, content: bytes | str, fix: str = "pass --out a writable folder") -> None:
    """Writes ``path`` through a temporary file in the same folder, then renames it into place.

    Raises:
        OutputError: the folder cannot be created or the file cannot be written.
    """
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{path.parent}: cannot be created ({error.strerror}); {fix}") from None
    partial = path.parent / f".{path.name}.{os.getpid()}.partial"
    try:
        with open(partial, "wb") as handle:  # plain open: the file gets the user's umask
            handle.write(data)
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot be written ({error.strerror}); {fix}") from None
