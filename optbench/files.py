"""Writing outputs all or nothing: a reader, or an interrupted run, never leaves half of one.

A file goes through a temporary sibling renamed over it (``write_atomic``). A folder of files
(``write_folder``) is written whole into a temporary sibling folder, then swapped with the old one
in one step, so the path holds the complete old folder or the complete new one, whatever stops
the process. Temporary names carry the writer's process id (``.NAME.optbench-tmp-PID``); a later
write of the same output removes those of a process that is gone (killed by SIGKILL, say).

Every output is checked before the work that fills it starts (``check_output_file``,
``check_output_folder``, ``check_apart``), so a bad ``--out`` costs no minutes of computing. A
folder optbench writes holds a marker (``MARKER``) naming its files: a folder without one, or
with other files in it, is the user's, and is written into only when they pass ``--force``.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import signal
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

MARKER = ".optbench-output"
"""The file in every folder optbench writes: JSON ``{"written_by": ..., "tool": ..., "files": [...]}``."""

_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?:optbench-(?:tmp|old)-(?P<pid>\d+)|(?P<legacy>\d+)\.partial)")
"""``.NAME.optbench-tmp-PID``, ``.NAME.optbench-old-PID``, and the ``.NAME.PID.partial`` of older versions."""

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class OutputError(Exception):
    """An output cannot be written; the message names the path and the fix."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised as SIGINT raises ``KeyboardInterrupt`` while ``interrupts_raise`` holds."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """For the duration, SIGTERM raises ``Interrupted``, so ``finally`` blocks clean up as on Ctrl-C.

    The previous handler comes back afterwards. Outside the main thread (where handlers cannot be
    set) this does nothing.
    """

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def exit_status(error: KeyboardInterrupt) -> int:
    """The status a command stopped by ``error`` exits with: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + getattr(error, "signum", signal.SIGINT)


def written(error: BaseException) -> bool:
    """Whether the output was already complete in place when the interrupt ``error`` arrived."""
    return bool(getattr(error, "optbench_written", False))


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (a quick one: renames), then act as they would have.

    The handlers are swapped rather than the signals blocked: a process-wide signal may land on any
    thread (torch's among them), but Python runs its handlers in the main thread alone. Outside the
    main thread this does nothing.
    """
    held: list[int] = []

    def hold(signum: int, frame: object) -> None:
        held.append(signum)

    previous: dict[int, object] = {}
    with suppress(ValueError):  # not the main thread: nothing is swapped
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)  # now handled as it would have been: KeyboardInterrupt, say


def _reason(path: Path) -> str | None:
    """Why a file or folder cannot be created at ``path`` (its parent's fault), or ``None``."""
    parent = path.parent
    if not parent.exists():
        return f"the folder {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the folder {parent} is not writable"
    return None


def check_output_file(path: Path, fix: str) -> None:
    """Raises ``OutputError`` unless ``path`` can be written as a file, before any work is done.

    Its folder must exist and be writable (nothing but the file is created), and ``path`` must
    not be a folder or anything but a regular file (a FIFO, a device).

    Raises:
        OutputError: one line naming ``path``, the reason and ``fix``.
    """
    if path.is_dir():
        raise OutputError(f"{path}: cannot be written (it is a folder); {fix}")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: cannot be written (not a regular file); {fix}")
    reason = _reason(path)
    if reason is not None:
        raise OutputError(f"{path}: cannot be written ({reason}); {fix}")


def _listed(folder: Path) -> set[str]:
    """The file names ``folder``'s marker lists (plain names only); empty without a readable marker."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        names = marker["files"]
    except (OSError, ValueError, TypeError, KeyError):
        return set()
    if not isinstance(names, list):
        return set()
    return {
        name for name in names if isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
    }


def foreign(folder: Path) -> list[str]:
    """The entries of the existing folder ``folder`` that optbench did not write, sorted.

    optbench's are its marker and the regular files the marker lists; an empty folder has none.
    """
    listed = _listed(folder)
    ours = {name for name in listed if _regular(folder / name)}
    return [name for name in sorted(os.listdir(folder)) if name != MARKER and name not in ours]


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def is_owned(path: Path) -> bool:
    """Whether ``path`` is a folder optbench wrote (its marker is there and it holds nothing else)."""
    real = Path(os.path.realpath(path))
    try:
        return real.is_dir() and (real / MARKER).is_file() and not foreign(real)
    except OSError:
        return False


def check_output_folder(path: Path, fix: str, force: bool = False) -> None:
    """Raises ``OutputError`` unless a folder of outputs can be written at ``path``, before any work.

    Only the last part of ``path`` is created: its parent must exist and be writable. An existing
    ``path`` must be a folder, empty or written by optbench (``foreign`` finds nothing), unless
    ``force`` (the files are then written beside the user's).

    Raises:
        OutputError: one line naming ``path``, the reason and ``fix``.
    """
    real = Path(os.path.realpath(path))
    if real.exists() and not real.is_dir():
        raise OutputError(f"{path}: exists and is not a folder; {fix}")
    if not real.name:
        raise OutputError(f"{path}: cannot be replaced (it is the root folder); {fix}")
    if real.is_dir():
        try:
            others = foreign(real)
        except OSError as error:
            raise OutputError(f"{path}: cannot be read ({error.strerror}); {fix}") from None
        if others and not force:
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            raise OutputError(
                f"{path}: holds files optbench did not write ({shown}); pass --out a new or empty folder, "
                "or --force to write beside them"
            )
        if others:  # written in place: only the folder itself must be writable
            if not os.access(real, os.W_OK | os.X_OK):
                raise OutputError(f"{path}: cannot be written (the folder is not writable); {fix}")
            return
    reason = _reason(real)
    if reason is not None:
        raise OutputError(f"{path}: cannot be created ({reason}); {fix}")


def check_apart(output: Path, inputs: Iterable[Path], fix: str) -> None:
    """Raises ``OutputError`` when writing ``output`` would replace or delete one of ``inputs``.

    That is when an input is ``output`` itself (the same file, through a link or a save number
    too), or lies inside the folder ``output``.

    Raises:
        OutputError: one line naming both and ``fix``.
    """
    out = Path(os.path.realpath(output))
    for given in inputs:
        path = Path(os.path.realpath(given))
        same = path == out or (path.exists() and out.exists() and os.path.samefile(path, out))
        if same:
            raise OutputError(f"{output}: is the input {given}; writing it would replace that input; {fix}")
        if out in path.parents:
            raise OutputError(f"{output}: holds the input {given}; writing there could delete it; {fix}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process's own leftover: no write of it is under way
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return True
    return True


def _remove(path: Path) -> None:
    """Removes a file or folder if it is there; a leftover that will not go is left."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(OSError):
            path.unlink(missing_ok=True)


def remove_stale(path: Path) -> None:
    """Removes the temporaries that writers of ``path`` which are no longer running left beside it.

    A folder renamed away (``.NAME.optbench-old-PID``) when ``path`` is missing is the complete
    old output, stranded by a kill between two renames: it is put back instead.
    """
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or match["name"] != path.name:
            continue
        if _alive(int(match["pid"] or match["legacy"])):
            continue
        stale = Path(entry.path)
        if ".optbench-old-" in entry.name and not os.path.lexists(path):
            try:
                os.rename(stale, path)
                continue
            except OSError:
                pass
        _remove(stale)


def _temporary(path: Path, kind: str = "tmp") -> Path:
    return path.parent / f".{path.name}.optbench-{kind}-{os.getpid()}"


def _data(content: bytes | str) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def _write(path: Path, content: bytes | str) -> None:
    with open(path, "wb") as handle:  # plain open: the file gets the user's umask
        handle.write(_data(content))


@contextmanager
def _putting_in_place() -> Iterator[None]:
    """Holds SIGINT and SIGTERM for the block's renames; an interrupt held past them says so (``written``).

    The interrupt is raised as the block ends: when every rename in it was done, the output is
    complete in place, and the command can say so rather than "nothing was written".
    """
    done = False
    try:
        with _signals_deferred():
            yield
            done = True
    except KeyboardInterrupt as error:
        if done:
            error.optbench_written = True  # type: ignore[attr-defined]
        raise


def write_atomic(path: Path, content: bytes | str, fix: str = "pass --out a writable folder") -> None:
    """Writes ``path`` through a temporary file in the same folder, then renames it into place.

    The folder must exist. Whatever stops the write (an error, Ctrl-C, SIGTERM with
    ``interrupts_raise``), ``path`` holds its old content or the new, and the temporary file is
    gone.

    Raises:
        OutputError: the folder is missing or the file cannot be written.
    """
    remove_stale(path)
    partial = _temporary(path)
    try:
        _write(partial, content)
        with _putting_in_place():
            os.replace(partial, path)
    except OSError as error:
        raise OutputError(f"{path}: cannot be written ({error.strerror}); {fix}") from None
    finally:
        with _signals_deferred():
            _remove(partial)


def _marker(files: Iterable[str], tool: str) -> str:
    from optbench import __version__  # here: the package imports much that this module need not

    document = {"written_by": f"optbench {__version__}", "tool": tool, "files": sorted(files)}
    return json.dumps(document, indent=1) + "\n"


def _exchange(first: Path, second: Path) -> bool:
    """Swaps two existing paths in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``).

    Returns:
        ``False`` where the system or the file system cannot (nothing was changed).

    Raises:
        OSError: the swap failed for another reason.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _swap_in(new: Path, target: Path) -> None:
    """Puts the complete folder ``new`` at ``target``, removing what was there; signals deferred.

    Where ``_exchange`` cannot swap, the old folder is renamed away first: a kill (SIGKILL, power
    loss) between that rename and the next leaves ``target`` missing for that moment, with the old
    folder beside it, which the next write puts back (``remove_stale``).
    """
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    if _exchange(new, target):
        _remove(new)  # the old folder, now under the temporary name
        return
    old = _temporary(target, "old")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(old, target)
        raise
    _remove(old)


def write_folder(
    path: Path,
    files: Mapping[str, bytes | str],
    tool: str,
    force: bool = False,
    fix: str = "pass --out a writable folder",
) -> None:
    """Writes ``files`` (name to content) as the folder ``path``, all or nothing, with its marker.

    A new folder, or one optbench wrote, is written whole as a temporary sibling and swapped in:
    ``path`` then holds the complete old folder or the complete new one whatever stops the write,
    and no temporary is left (but for a kill, cleaned by the next write). A folder with the user's
    files in it is refused (``check_output_folder``) unless ``force``: the files are then written
    as temporaries beside theirs and renamed over their names together at the end, where only a
    crash between two renames can leave some old ones; the user's other files stay.

    An interrupt that arrives once the output is in place is raised with ``written`` true.

    Raises:
        OutputError: the folder cannot be written; nothing was changed.
    """
    real = Path(os.path.realpath(path))
    check_output_folder(path, fix, force)  # first: a refused --out changes nothing beside it either
    remove_stale(real)
    try:
        if real.is_dir() and foreign(real):
            _write_beside(real, files, tool)
        else:
            _write_whole(real, files, tool)
    except OSError as error:
        raise OutputError(f"{path}: cannot be written ({error.strerror}); {fix}") from None


def _write_whole(target: Path, files: Mapping[str, bytes | str], tool: str) -> None:
    new = _temporary(target)
    _remove(new)
    try:
        new.mkdir()
        for name, content in files.items():
            _write(new / name, content)
        _write(new / MARKER, _marker(files, tool))
        with _putting_in_place():
            _swap_in(new, target)
    finally:
        with _signals_deferred():
            _remove(new)


def _write_beside(folder: Path, files: Mapping[str, bytes | str], tool: str) -> None:
    old = _listed(folder) - set(files)
    contents = {**files, MARKER: _marker(files, tool)}
    staged: dict[str, Path] = {}
    try:
        for name, content in contents.items():
            remove_stale(folder / name)
            staged[name] = _temporary(folder / name)
            _write(staged[name], content)
        with _putting_in_place():
            for name, partial in staged.items():
                os.replace(partial, folder / name)
            for name in old:  # the earlier report's files this one no longer has
                if _regular(folder / name):
                    (folder / name).unlink()
    finally:
        with _signals_deferred():
            for partial in staged.values():
                _remove(partial)
