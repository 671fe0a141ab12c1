"""Outputs are written all or nothing, never over an input, into folders optbench owns, checked first.

``optbench.files`` on its own, then the commands that use it: an interrupt (Ctrl-C, SIGTERM) or a
crash at any point leaves the old output or the new one, complete, and no temporary beside it.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from optbench import __version__, files
from optbench import baseline as baseline_cli
from optbench.files import MARKER, OutputError

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "tests" / "data" / "runs" / "schema3.json"
OLD = {"index.html": "old page", "summary.csv": "old,table\n", "seed.png": b"old png"}
NEW = {"index.html": "new page", "summary.csv": "new,table\n", "summary.md": "# new\n"}


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def as_bytes(documents: dict[str, bytes | str]) -> dict[str, bytes]:
    return {name: value.encode() if isinstance(value, str) else value for name, value in documents.items()}


def without_marker(folder: Path) -> dict[str, bytes]:
    return {name: data for name, data in contents(folder).items() if name != MARKER}


def leftovers(parent: Path) -> list[str]:
    """Every temporary under ``parent``, however deep."""
    return sorted(str(path) for path in parent.rglob("*optbench-tmp-*")) + sorted(
        str(path) for path in parent.rglob("*optbench-old-*")
    )


@pytest.fixture
def old_report(tmp_path) -> Path:
    out = tmp_path / "report"
    files.write_folder(out, OLD, "test")
    return out


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(done.stdout)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    return pid


# The folder writer.


def test_a_new_folder_holds_the_files_and_a_marker_naming_them(tmp_path):
    out = tmp_path / "report"
    files.write_folder(out, NEW, "python -m optbench.report")
    assert without_marker(out) == as_bytes(NEW)
    marker = json.loads((out / MARKER).read_text())
    assert marker == {
        "written_by": f"optbench {__version__}",
        "tool": "python -m optbench.report",
        "files": sorted(NEW),
    }
    assert files.is_owned(out) and leftovers(tmp_path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-away"])
def test_a_folder_optbench_wrote_is_replaced_whole(exchange, old_report, tmp_path, monkeypatch):
    if not exchange:
        monkeypatch.setattr(files, "_exchange", lambda first, second: False)
    files.write_folder(old_report, NEW, "test")
    assert without_marker(old_report) == as_bytes(NEW)  # seed.png, of the old report only, is gone
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "one").write_text("1")
    (second / "two").write_text("2")
    assert files._exchange(first, second)
    assert [p.name for p in first.iterdir()] == ["two"] and [p.name for p in second.iterdir()] == ["one"]


STOPS = [KeyboardInterrupt(), files.Interrupted(signal.SIGTERM), RuntimeError("crash")]
"""What may stop a write: Ctrl-C, SIGTERM under ``interrupts_raise``, a bug."""


@pytest.mark.parametrize("stop", STOPS, ids=["sigint", "sigterm", "crash"])
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-away"])
def test_a_write_stopped_between_two_files_leaves_the_old_folder_whole(
    stop, exchange, old_report, tmp_path, monkeypatch, stop_the_second_write
):
    before = contents(old_report)
    stop_the_second_write(stop)
    if not exchange:
        monkeypatch.setattr(files, "_exchange", lambda first, second: False)
    with pytest.raises(type(stop)) as caught:
        files.write_folder(old_report, NEW, "test")
    assert not files.written(caught.value)
    assert contents(old_report) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report"]


def test_a_failed_swap_leaves_the_old_folder_whole(old_report, tmp_path, monkeypatch):
    before = contents(old_report)
    monkeypatch.setattr(files, "_exchange", lambda first, second: False)
    real_rename = os.rename

    def second_rename_fails(source, target):
        if Path(source).name.startswith(".report.optbench-tmp-"):
            raise OSError(28, "No space left on device")
        real_rename(source, target)

    monkeypatch.setattr(files.os, "rename", second_rename_fails)
    with pytest.raises(
        OutputError, match=r"report: cannot be written \(No space left on device\); pass --out"
    ):
        files.write_folder(old_report, NEW, "test")
    assert contents(old_report) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-away"])
def test_an_interrupt_during_the_swap_waits_for_it_and_says_the_output_is_written(
    exchange, signum, old_report, tmp_path, monkeypatch
):
    real_exchange = files._exchange

    def interrupted_exchange(first, second):
        os.kill(os.getpid(), signum)  # held until the swap is done
        return real_exchange(first, second) if exchange else False

    monkeypatch.setattr(files, "_exchange", interrupted_exchange)
    with pytest.raises(KeyboardInterrupt) as caught, files.interrupts_raise():
        files.write_folder(old_report, NEW, "test")
    assert files.written(caught.value) and files.exit_status(caught.value) == 128 + signum
    assert without_marker(old_report) == as_bytes(NEW) and leftovers(tmp_path) == []


def test_temporaries_of_a_process_that_is_gone_are_removed_and_a_live_ones_kept(old_report, tmp_path):
    gone, live = dead_pid(), os.getppid()
    stale_folder = tmp_path / f".report.optbench-tmp-{gone}"
    stale_folder.mkdir()
    (stale_folder / "index.html").write_text("half")
    stale_file = tmp_path / f".report.optbench-old-{gone}"
    stale_file.write_text("x")
    legacy = tmp_path / f".report.{gone}.partial"
    legacy.write_text("x")
    busy = tmp_path / f".report.optbench-tmp-{live}"
    busy.mkdir()
    other = tmp_path / f".other.optbench-tmp-{gone}"  # another output's: not this write's business
    other.mkdir()
    files.write_folder(old_report, NEW, "test")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["report", busy.name, other.name])


def test_an_old_folder_stranded_between_two_renames_is_put_back(old_report, tmp_path):
    before = contents(old_report)
    stranded = tmp_path / f".report.optbench-old-{dead_pid()}"
    old_report.rename(stranded)
    files.remove_stale(old_report)
    assert contents(old_report) == before and not stranded.exists()


def test_a_folder_of_the_users_is_refused_and_force_writes_beside_their_files(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.html").write_text("my own page")
    (out / "notes.txt").write_text("my notes")
    refused = r"mine: holds files optbench did not write \(index.html, notes.txt\);"
    with pytest.raises(OutputError, match=refused):
        files.write_folder(out, NEW, "test")
    assert contents(out) == {"index.html": b"my own page", "notes.txt": b"my notes"}
    files.write_folder(out, NEW, "test", force=True)
    assert contents(out) == {**as_bytes(NEW), "notes.txt": b"my notes", MARKER: (out / MARKER).read_bytes()}
    assert json.loads((out / MARKER).read_text())["files"] == sorted(NEW)
    assert not files.is_owned(out) and leftovers(tmp_path) == []
    with pytest.raises(OutputError, match=r"mine: holds files optbench did not write \(notes.txt\);"):
        files.write_folder(out, NEW, "test")  # the report's files are optbench's now; the notes are not
    files.write_folder(out, {"index.html": "newer"}, "test", force=True)
    assert sorted(contents(out)) == sorted([MARKER, "index.html", "notes.txt"])  # its own stale ones went


def test_a_forced_write_stopped_between_two_files_changes_nothing(tmp_path, stop_the_second_write):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "index.html").write_text("my own page")
    stop_the_second_write(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        files.write_folder(out, NEW, "test", force=True)
    assert contents(out) == {"index.html": b"my own page"} and leftovers(tmp_path) == []


def test_an_entry_the_marker_lists_but_that_is_a_folder_is_not_optbenchs(old_report):
    (old_report / "index.html").unlink()
    (old_report / "index.html").mkdir()
    assert files.foreign(old_report) == ["index.html"]


def test_a_folder_is_written_from_another_thread_too(old_report):
    thread = threading.Thread(target=files.write_folder, args=(old_report, NEW, "test"))
    thread.start()
    thread.join()
    assert without_marker(old_report) == as_bytes(NEW)


def test_an_empty_folder_is_written_whole(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    files.write_folder(out, NEW, "test")
    assert without_marker(out) == as_bytes(NEW)


# The file writer.


@pytest.mark.parametrize(
    "stop", [*STOPS, OSError(28, "No space left")], ids=["sigint", "sigterm", "crash", "full"]
)
def test_a_file_write_stopped_halfway_leaves_the_old_file_and_no_partial(stop, tmp_path, monkeypatch):
    path = tmp_path / "baseline.json"
    path.write_text("old")

    def half(partial, content):
        partial.write_bytes(b"ha")
        raise stop

    monkeypatch.setattr(files, "_write", half)
    with pytest.raises(OutputError if isinstance(stop, OSError) else type(stop)):
        files.write_atomic(path, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.json"] and path.read_text() == "old"


def test_a_file_write_removes_stale_partials_of_its_own_name(tmp_path):
    gone = dead_pid()
    for name in (f".x.json.optbench-tmp-{gone}", f".x.json.{gone}.partial", f".y.json.optbench-tmp-{gone}"):
        (tmp_path / name).write_text("half")
    files.write_atomic(tmp_path / "x.json", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".y.json.optbench-tmp-{gone}", "x.json"])


# The checks.


def test_output_file_checks(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {
        tmp_path / "no" / "x.md": f"x.md: cannot be written (the folder {tmp_path / 'no'} does not exist)",
        blocker / "x.md": f"x.md: cannot be written ({blocker} is not a folder)",
        tmp_path: f"{tmp_path}: cannot be written (it is a folder)",
        fifo: f"{fifo}: cannot be written (not a regular file)",
    }
    for path, message in cases.items():
        with pytest.raises(OutputError) as caught:
            files.check_output_file(path, "pass --out FIX")
        assert message in str(caught.value) and str(caught.value).endswith("; pass --out FIX")
        assert "\n" not in str(caught.value)
    files.check_output_file(blocker, "fix")  # an existing file is replaced
    files.check_output_file(tmp_path / "new.md", "fix")


def test_output_folder_checks(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file")
    cases = {
        tmp_path / "a" / "b": f"b: cannot be created (the folder {tmp_path / 'a'} does not exist); fix",
        blocker / "report": f"report: cannot be created ({blocker} is not a folder); fix",
        blocker: f"{blocker}: exists and is not a folder; fix",
    }
    for path, message in cases.items():
        for force in (False, True):
            with pytest.raises(OutputError) as caught:
                files.check_output_folder(path, "fix", force)
            assert str(caught.value).endswith(message)
    files.check_output_folder(tmp_path / "new", "fix")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_no_output_may_be_or_hold_an_input(tmp_path):
    run = tmp_path / "runs" / "run.json"
    run.parent.mkdir()
    run.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(run)
    cases = {
        (run, run): "is the input",
        (link, run): "is the input",
        (run.parent, run): "holds the input",
        (tmp_path, run.parent): "holds the input",
        (run.parent, run.parent): "is the input",
    }
    for (output, given), message in cases.items():
        with pytest.raises(OutputError, match=message):
            files.check_apart(output, [given], "fix")
    files.check_apart(tmp_path / "report", [run, run.parent], "fix")
    files.check_apart(run.parent / "report", [run], "fix")  # beside an input is fine


def test_sigterm_raises_an_interrupt_while_it_is_held_and_the_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(files.Interrupted) as caught, files.interrupts_raise():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert isinstance(caught.value, KeyboardInterrupt) and files.exit_status(caught.value) == 143
    assert files.exit_status(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGTERM) is before


# The baseline command.


def test_the_baseline_is_never_written_over_the_run_it_reads(tmp_path, capsys):
    run = tmp_path / "run.json"
    run.write_bytes(RUN.read_bytes())
    assert baseline_cli.main([str(run), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {run}: is the input {run};" in err
    machine = tmp_path / ".benchmarks" / "m"
    machine.mkdir(parents=True)
    saved = machine / "0003_abc_20260101_000000.json"
    saved.write_bytes(RUN.read_bytes())
    argv = ["3", "--out", str(saved), "--benchmarks-dir", str(tmp_path / ".benchmarks")]
    assert baseline_cli.main(argv) == 2
    assert "is the input" in capsys.readouterr().err
    assert run.read_bytes() == saved.read_bytes() == RUN.read_bytes()


@pytest.mark.parametrize("where", ["missing/b.json", "file/b.json", "."])
def test_a_bad_baseline_out_is_refused_before_the_run_is_read(where, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(baseline_cli, "load", lambda paths: pytest.fail("read before --out was checked"))
    assert baseline_cli.main([str(RUN), "--out", str(tmp_path / where)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be written (" in err
    assert "; pass --out a file in an existing, writable folder" in err


def test_an_interrupted_baseline_writes_nothing_and_exits_130(tmp_path, capsys, monkeypatch):
    out = tmp_path / "b.json"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(baseline_cli, "baseline_document", interrupted)
    assert baseline_cli.main([str(RUN), "--out", str(out)]) == 130
    assert capsys.readouterr().err == "python -m optbench.baseline: interrupted; nothing was written\n"
    assert list(tmp_path.iterdir()) == []


# The report command, killed by SIGTERM in another process.

SLOW_WRITE = """
import sys, time
from optbench import files
from optbench.report import main
real = files._write
def slow(path, content):
    real(path, content)
    print("wrote " + path.name, file=sys.stderr, flush=True)
    time.sleep(60)  # until the SIGTERM: the test sends it after the first file
files._write = slow
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("old", [True, False], ids=["over-a-report", "new"])
def test_sigterm_while_the_report_writes_leaves_the_old_report_and_no_temporaries(old, tmp_path):
    out = tmp_path / "report"
    if old:
        files.write_folder(out, OLD, "python -m optbench.report")
    before = contents(out) if old else None
    command = [sys.executable, "-c", textwrap.dedent(SLOW_WRITE), str(RUN), "--out", str(out)]
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:  # wait until the first file of the new report is written
        lines.append(line)
        if line.startswith("wrote "):
            break
    process.send_signal(signal.SIGTERM)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 143, "".join(lines) + rest
    assert "Traceback" not in rest
    expected = f"{out} still holds the old report" if old else "nothing was written"
    assert rest.strip().splitlines()[-1] == f"python -m optbench.report: interrupted; {expected}"
    if old:
        assert contents(out) == before
    else:
        assert not out.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == (["report"] if old else [])
