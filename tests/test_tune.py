"""The learning-rate sweep's rule, grid, file and command line, and its processes and cluster."""

import argparse
import fcntl
import itertools
import json
import math
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest
import torch

from optbench import OPTIMIZERS
from optbench.optimizers.registry import OptimizerInfo
from optbench.problems import LINE
from optbench.tune import settings
from optbench.tune.choose import PASSING, Point, choose, windows
from optbench.tune.grid import DEFAULT_GRID, check_grid, parse_lr_grid
from optbench.tune.sweep import Job, NoLearningRateError, check_takes_lr, sweep, sweep_case

SMALL = (0.001, 0.01, 0.1, 1.0)
"""A grid of four learning rates: enough for a window, quick to sweep."""


def point(lr, pass_rate, q95=0.1, median=0.05):
    return Point(lr, pass_rate, median, q95, 0.0, 0.0)


def test_the_default_grid_is_thirteen_half_decades_from_1e_4_to_1e2():
    assert len(DEFAULT_GRID) == 13
    assert DEFAULT_GRID[0] == 1e-4 and DEFAULT_GRID[-1] == 100.0
    steps = [math.log10(b / a) for a, b in itertools.pairwise(DEFAULT_GRID)]
    assert all(abs(step - 0.5) < 1e-3 for step in steps)
    assert parse_lr_grid("1e-4:1e2:2") == DEFAULT_GRID


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1,0.01", (0.01, 0.1)),
        ("1", (1.0,)),
        ("0.01:1:1", (0.01, 0.1, 1.0)),
        (" 3e-3 , 3e-2 ", (0.003, 0.03)),
    ],
)
def test_grids_are_parsed_sorted(text, expected):
    assert parse_lr_grid(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        (",", "empty"),
        ("0", "positive"),
        ("-1", "positive"),
        ("nan", "positive"),
        ("inf", "positive"),
        ("abc", "not a number"),
        ("0.1,0.1", "twice"),
        ("1:2", "LOW:HIGH:PER_DECADE"),
        ("1:0.1:2", "low <= high"),
        ("1:10:x", "LOW:HIGH:PER_DECADE"),
        ("1e-300:1e300:1", "more than"),
    ],
)
def test_bad_grids_are_one_line_errors(text, says):
    with pytest.raises(argparse.ArgumentTypeError, match=says) as caught:
        parse_lr_grid(text)
    assert "\n" not in str(caught.value)


def test_check_grid_refuses_what_is_not_a_number():
    for bad in ([True], ["0.1"], [None]):
        with pytest.raises(ValueError, match="not a number"):
            check_grid(bad)


def test_the_rule_takes_the_middle_of_the_widest_passing_window():
    points = [
        point(0.001, 1.0),  # a window of one point
        point(0.01, 0.5),
        point(0.1, 1.0),
        point(0.3, 0.97, q95=0.01),
        point(1.0, 1.0),
        point(3.0, 0.0),
    ]
    assert [[p.lr for p in run] for run in windows(points)] == [[0.001], [0.1, 0.3, 1.0]]
    choice = choose(points)
    assert choice.window == (0.1, 1.0)
    assert choice.lr == 0.3  # the middle, though 0.1 and 1.0 pass on more seeds
    assert choice.tunability == pytest.approx(1.0)


def test_of_two_middle_points_the_one_passing_more_seeds_then_the_lower_excess_wins():
    even = [point(0.01, 1.0), point(0.1, 0.96), point(1.0, 1.0, q95=0.5), point(10.0, 1.0)]
    assert choose(even).lr == 1.0
    tied = [point(0.01, 1.0), point(0.1, 1.0, q95=0.2), point(1.0, 1.0, q95=0.1), point(10.0, 1.0)]
    assert choose(tied).lr == 1.0
    assert choose([point(0.1, 1.0), point(1.0, 1.0)]).lr == 0.1  # all equal: the lower lr


def test_where_nothing_passes_the_best_pass_rate_wins_and_tunability_is_zero():
    points = [point(0.01, 0.2), point(0.1, PASSING - 0.01, q95=9.0), point(1.0, 0.9, q95=0.1)]
    choice = choose(points)
    assert (choice.lr, choice.window, choice.tunability) == (0.1, None, 0.0)
    diverged = [Point(0.1, 0.0, math.inf, math.inf, 1.0, 0.0), Point(1.0, 0.0, 3.0, 4.0, 0.5, 0.0)]
    assert choose(diverged).lr == 1.0


def test_a_window_of_one_point_is_zero_decades_wide_but_a_window():
    choice = choose([point(0.01, 0.0), point(0.1, 1.0), point(1.0, 0.0)])
    assert (choice.lr, choice.window, choice.tunability) == (0.1, (0.1, 0.1), 0.0)


def test_between_equally_wide_windows_the_one_with_the_lower_excess_loss_wins():
    points = [point(0.01, 1.0, q95=0.3), point(0.1, 0.0), point(1.0, 1.0, q95=0.2)]
    assert choose(points).lr == 1.0


@pytest.fixture(scope="module")
def swept():
    jobs = [Job(OPTIMIZERS[name], LINE, 10, grid=SMALL, seeds=4) for name in ("sgd", "lbfgs")]
    return jobs, sweep(jobs, n_jobs=1, progress=False)


def test_a_sweep_records_each_points_outcome_over_its_seeds(swept):
    _, (sgd, lbfgs) = swept
    assert (sgd.optimizer, sgd.batch_size, sgd.seeds, sgd.how) == ("sgd", 10, 4, "vectorised")
    assert (lbfgs.how, lbfgs.seeds) == ("point by point", 4)
    assert [row.lr for row in sgd.points] == list(SMALL)
    by_lr = {row.lr: row for row in sgd.points}
    assert by_lr[0.01].pass_rate == 1.0  # the registry's own lr at batch size 10
    assert by_lr[1.0].diverged == 1.0 and by_lr[1.0].excess_q95 is None
    assert (sgd.lr, sgd.window, sgd.tunability) == (0.01, (0.01, 0.01), 0.0)
    assert sgd.torch and sgd.date


def test_the_file_round_trips_and_is_checked_on_load(tmp_path, swept):
    _, rows = swept
    path = tmp_path / "tuned.json"
    settings.write(path, rows, "python -m optbench.tune")
    loaded = settings.read(path)
    assert loaded.cases == rows
    assert loaded.find("sgd", "line", 10) == rows[0]
    assert loaded.find("sgd", "line", 1) is None


def _damaged(tmp_path, rows, damage):
    data = json.loads(settings.dumps(rows, "x"))
    damage(data)
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda d: d["cases"][0].update(lr=123.0), "not what the rule chooses"),
        (lambda d: d["cases"][0].update(tunability=5.0), "not what the rule chooses"),
        (lambda d: d["cases"][0]["points"].pop(), "not its grid"),
        (lambda d: d["cases"][0].update(batch_size=0), "batch_size"),
        (lambda d: d["cases"][0].update(dtype="float16"), "dtype"),
        (lambda d: d["cases"][0]["points"][0].update(pass_rate=1.5), "pass_rate"),
        (lambda d: d["cases"][0]["points"][0].update(lr="0.1"), "lr"),
        (lambda d: d["cases"].append(d["cases"][0]), "given twice"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.pop("optbench_tuned"), "not an optbench tuned-settings file"),
        (lambda d: d.update(optbench_tuned=2), "optbench_tuned"),
    ],
)
def test_a_damaged_file_is_one_line_naming_it(tmp_path, swept, damage, says):
    path = _damaged(tmp_path, swept[1], damage)
    with pytest.raises(settings.TunedError, match=says) as caught:
        settings.read(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("content", ["", "{", "[]", "null", "\x00\xff", "[" * 100_000])
def test_foreign_files_are_one_line(tmp_path, content):
    path = tmp_path / "foreign.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(settings.TunedError) as caught:
        settings.read(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(settings.TunedError, match="not a regular file"):
        settings.read(tmp_path)
    with pytest.raises(settings.TunedError, match="cannot be read"):
        settings.read(tmp_path / "missing.json")


def test_processes_give_what_one_process_gives(swept):
    jobs, rows = swept
    parallel = sweep(jobs, n_jobs=2, progress=False)
    assert [_measured(row) for row in parallel] == [_measured(row) for row in rows]


def _measured(row):
    """A case without what the clock and calendar say."""
    data = row.model_dump()
    data.pop("seconds"), data.pop("date")
    for one in data["points"]:
        one.pop("seconds")
    return data


def test_a_dask_cluster_gives_what_one_process_gives(swept):
    distributed = pytest.importorskip("distributed")
    jobs, rows = swept
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = sweep(jobs, dask=cluster.scheduler_address, progress=False)
        assert len(cluster.workers) == 2
    assert [_measured(row) for row in remote] == [_measured(row) for row in rows]


def test_an_optimizer_without_an_lr_cannot_be_tuned():
    class NoRate(torch.optim.Optimizer):
        def __init__(self, params, momentum=0.0):
            super().__init__(params, {"momentum": momentum})

    info = OptimizerInfo("norate", None, NoRate)
    with pytest.raises(NoLearningRateError, match="takes no lr") as caught:
        check_takes_lr(info)
    assert "without tuning" in str(caught.value)
    for name in OPTIMIZERS:
        check_takes_lr(OPTIMIZERS[name])  # every registry optimizer has one


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "optbench.tune", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--optimizers", "nosuch"], "unknown optimizer 'nosuch'"),
        (["--problems", "nosuch"], "unknown problem 'nosuch'"),
        (["--lr-grid", "0,1"], "positive"),
        (["--lr-grid", ""], "empty"),
        (["--tune-seeds", "0"], "seeds"),
        (["--tune-seeds", "5000"], "at most 1024"),
        (["--batch-sizes", "0"], "positive"),
        (["--jobs", "0"], "--jobs"),
        (["--device", "gpu"], "device"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "cuda:99"], "CUDA device"),
        (["--optimizer", "x=nosuch.module:Thing"], "cannot import"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, says):
    out = tmp_path / "tuned.json"
    result = run_cli(*args, "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("python -m optbench.tune: error")]
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_an_unwritable_out_is_refused_before_any_sweep(tmp_path):
    result = run_cli("--optimizers", "sgd", "--out", str(tmp_path / "missing" / "tuned.json"))
    assert result.returncode == 2
    assert "cannot" in result.stderr or "does not exist" in result.stderr
    assert "sgd-bs" not in result.stdout  # nothing was swept


def test_an_existing_file_is_kept_when_a_sweep_is_refused(tmp_path):
    out = tmp_path / "tuned.json"
    out.write_text("keep me")
    result = run_cli("--optimizers", "sgd", "--lr-grid", "-1", "--out", str(out))
    assert result.returncode == 2
    assert out.read_text() == "keep me"


def test_the_command_line_sweeps_and_writes_the_file(tmp_path):
    out = tmp_path / "tuned.json"
    args = ["--optimizers", "sgd", "--batch-sizes", "10", "--lr-grid", "0.001,0.01,0.1", "--tune-seeds", "4"]
    result = run_cli(*args, "--jobs", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "sgd-bs10-cpu: lr 0.01" in result.stdout
    assert "optbench tune" not in result.stderr  # no progress bar: stderr is not a terminal
    case = settings.read(out).find("sgd", "line", 10)
    assert case is not None and case.seeds == 4 and case.grid == [0.001, 0.01, 0.1]
    assert settings.read(out).command.startswith("python -m optbench.tune --optimizers sgd")


def test_an_optimizer_without_an_lr_is_refused_on_the_command_line(tmp_path):
    module = tmp_path / "norate.py"
    module.write_text(
        "import torch\n"
        "class NoRate(torch.optim.Optimizer):\n"
        "    def __init__(self, params, momentum=0.0):\n"
        "        super().__init__(params, {'momentum': momentum})\n"
        "    def step(self, closure=None):\n"
        "        pass\n"
    )
    result = run_cli("--optimizer", "norate=norate:NoRate", "--optimizers", "norate", cwd=tmp_path)
    assert result.returncode == 2
    assert "takes no lr" in result.stderr and "Traceback" not in result.stderr


def test_sweep_case_is_deterministic():
    job = Job(OPTIMIZERS["adam"], LINE, 100, grid=(0.1, 1.0), seeds=2)
    assert _measured(sweep_case(job)) == _measured(sweep_case(job))


def test_a_progress_bar_shows_on_a_terminal_for_a_sweep_of_some_seconds(tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 x 0
    # Point by point, 6 seeds of L-BFGS at batch size 1 take several seconds: past the bar's delay.
    args = ["--optimizers", "lbfgs", "--problems", "line", "--batch-sizes", "1", "--lr-grid", "0.3,1"]
    args += ["--tune-seeds", "6"]
    process = subprocess.Popen(
        [sys.executable, "-m", "optbench.tune", *args, "--jobs", "1"],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the follower closed: the process ended
            break
        if not chunk:
            break
        seen += chunk
    process.wait(timeout=300)
    os.close(leader)
    assert process.returncode == 0
    assert b"optbench tune" in seen and b"1/1" in seen


def test_a_missing_extra_is_one_line_naming_it(monkeypatch, capsys, tmp_path):
    from optbench.tune.__main__ import main

    monkeypatch.setitem(sys.modules, "joblib", None)  # import joblib now raises ImportError
    out = tmp_path / "tuned.json"
    args = ["--optimizers", "sgd", "--batch-sizes", "10", "--lr-grid", "0.01", "--tune-seeds", "2"]
    with pytest.raises(SystemExit) as caught:
        main([*args, "--out", str(out)])
    assert caught.value.code == 2
    assert "pip install 'optbench[tune]'" in capsys.readouterr().err
    assert not out.exists()


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "tuned.json"
    args = ["--optimizers", "sgd", "--batch-sizes", "10", "--lr-grid", "0.01", "--tune-seeds", "2"]
    result = run_cli(*args, "--dask", "tcp://127.0.0.1:9", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert "cannot reach the scheduler" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
