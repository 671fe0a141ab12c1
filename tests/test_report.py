"""The report on real runs that the suite itself saved, its plot data, comparisons and bad input."""

import copy
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest.mock import ANY

import pandas as pd
import pytest

from optbench import LINE, LineDataset, files, least_squares
from optbench import report as report_module
from optbench.files import MARKER
from optbench.plots import data as plotdata
from optbench.report import main
from optbench.results import load
from optbench.results.tables import markdown
from optbench.tune import settings

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {"loss_curves.png", "pass_rate.png", "time_to_target.png", "profiles.png", "seed.png"}
OUTPUTS = FIGURES | {"summary.csv", "summary.md", "index.html", "optimizers.csv"}
MATRIX_IDS = {f"{name}-bs{bs}-cpu" for name in ("adam", "sgd") for bs in (10, 100)}
SEED_IDS = {"seed.adam-bs1-cpu", "seed.sgd-bs1-cpu"}


@pytest.fixture(autouse=True)
def _no_packaged_tuned_file(monkeypatch, tmp_path) -> None:
    """These tests are of the runs' own figures and tables: the sensitivity figure that the packaged tuned
    settings add is tests/test_report_sensitivity.py's."""
    monkeypatch.setattr(settings, "TUNED_FILE", tmp_path / "no-tuned.json")


@pytest.fixture(scope="session")
def saved_run(tmp_path_factory) -> Path:
    """A real run: a subset of the matrix and the seed profile, saved by pytest-benchmark."""
    path = tmp_path_factory.mktemp("run") / "run.json"
    command = [
        sys.executable, "-m", "pytest",
        "optbench/benchmarks/test_matrix.py", "optbench/benchmarks/test_seed_profile.py",
        "-q", "-p", "no:cacheprovider",
        "--optbench-problems=line", "--optbench-optimizers=sgd,adam", "--optbench-batch-sizes=10,100",
        "--optbench-devices=cpu",
        "--benchmark-min-rounds=1", f"--benchmark-json={path}",
    ]  # fmt: skip
    # Not a worker's environment: pytest-benchmark times nothing where PYTEST_XDIST_WORKER is set.
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_XDIST_WORKER"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return path


@pytest.fixture
def run_json(saved_run) -> dict:
    return json.loads(saved_run.read_text())


def records(data: dict) -> dict[str, dict]:
    return {bench["extra_info"]["id"]: bench for bench in data["benchmarks"]}


def report(capsys, *argv):
    status = main([str(arg) for arg in argv])
    return status, capsys.readouterr().err


def test_report_from_a_real_run(saved_run, run_json, tmp_path, capsys):
    out = tmp_path / "report"
    status, err = report(capsys, saved_run, "--out", out)
    assert status == 0, err
    assert {path.name for path in out.iterdir()} == OUTPUTS | {MARKER}
    assert json.loads((out / MARKER).read_text())["files"] == sorted(OUTPUTS)
    lines = err.strip().splitlines()
    assert all(line.startswith("python -m optbench.report: ") for line in lines)
    assert lines[-1] == f"python -m optbench.report: wrote {out}/"
    table = pd.read_csv(out / "summary.csv")
    assert set(table.id) == MATRIX_IDS | SEED_IDS
    saved = records(run_json)
    for row in table.itertuples():
        info, stats = saved[row.id]["extra_info"], saved[row.id]["stats"]
        assert row.final_loss == pytest.approx(info["final_loss"])
        assert row.slope == pytest.approx(info["slope"]) and row.intercept == pytest.approx(info["intercept"])
        assert row.excess_loss == pytest.approx(info["final_loss"] - info["reference_loss"])
        assert (row.seeds, row.seed_runs) == (info["seeds"], info["seed_runs"])
        assert row.s_all_seeds == pytest.approx(stats["median"])
        assert row.s_per_seed == pytest.approx(stats["median"] / info["seeds"])
        # The matrix's seeds step together, the seed profile's one seed alone: a step of one run either way.
        assert row.ms_per_step == pytest.approx(stats["median"] / info["steps"] * 1e3)
        assert row.seed_runs == ("one" if row.id in SEED_IDS else "vectorised")
        assert row.status == info["status"] == "converged" and row.passed
    markdown = (out / "summary.md").read_text()
    assert "| sgd-bs10-cpu | line | sgd | 10 | cpu |" in markdown
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert "http://" not in page and "https://" not in page
    assert (out / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_newest_autosaved_run_is_the_default(saved_run, run_json, tmp_path, capsys):
    machine = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    machine.mkdir(parents=True)
    older = copy.deepcopy(run_json)
    older["benchmarks"] = older["benchmarks"][:1]
    (machine / "0001_abc_20260101_000000.json").write_text(json.dumps(older))
    shutil.copy(saved_run, machine / "0002_def_20260102_000000.json")
    status, err = report(capsys, "--benchmarks-dir", tmp_path / ".benchmarks", "--out", tmp_path / "out")
    assert status == 0, err
    assert "0002_def_20260102_000000.json" in err
    assert len(pd.read_csv(tmp_path / "out" / "summary.csv")) == len(MATRIX_IDS | SEED_IDS)


def test_plot_data(saved_run):
    frame = load([saved_run]).frame
    matrix, seed_rows = plotdata.split_seed_profile(frame)
    assert set(seed_rows.id) == SEED_IDS and set(matrix.id) == MATRIX_IDS
    curves = plotdata.loss_curves(matrix)
    assert len(curves) == sum(len(curve) for curve in matrix.epoch_loss)
    sgd = curves[curves.id == "sgd-bs10-cpu"]
    expected = matrix.set_index("id").loc["sgd-bs10-cpu"]
    assert expected.seeds == 32 and sgd.seeds.unique().tolist() == [32]
    assert sgd.problem.unique().tolist() == ["line"]
    assert sgd.epoch.tolist() == list(range(21)) and sgd.loss.tolist() == expected.epoch_loss_q50
    assert sgd.low.tolist() == expected.epoch_loss_q10 and sgd.high.tolist() == expected.epoch_loss_q90
    assert (sgd.low <= sgd.loss).all() and (sgd.loss <= sgd.high).all()
    assert sgd.loss.tolist() != expected.epoch_loss  # the median, not the first seed
    assert plotdata.panels(matrix) == [("line", 10, "cpu"), ("line", 100, "cpu")]
    floors = plotdata.floors(matrix).set_index(["problem", "batch_size", "device"]).loss
    assert len(floors) == 2
    assert floors["line", 10, "cpu"] == matrix[matrix.batch_size == 10].reference_loss.min()
    seed = plotdata.seed_curves(seed_rows)
    assert set(seed.optimizer) == {"seed.sgd", "seed.adam"}
    adam = seed[seed.optimizer == "seed.adam"]
    assert len(adam) == 200 and adam.step.tolist() == list(range(10, 2001, 10))


def test_a_diverged_run_keeps_its_curve_up_to_the_divergence():
    frame = pd.DataFrame(
        {
            "problem": ["line"],
            "batch_size": [1],
            "device": ["cpu"],
            "optimizer": ["x"],
            "id": ["x-bs1-cpu"],
            "seeds": [1],
            **{f"epoch_loss_q{q}": [[9.0, 3.0, math.nan]] for q in (10, 50, 90)},
        }
    )
    assert plotdata.loss_curves(frame).loss.tolist() == [9.0, 3.0]


def write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


BAD_INPUTS = {
    "missing": (lambda tmp, run: tmp / "nope.json", "nope.json: no such file or folder; check the path"),
    "empty folder": (lambda tmp, run: (tmp / "empty").mkdir() or tmp / "empty", "holds no .json results"),
    "truncated": (lambda tmp, run: write(tmp / "cut.json", json.dumps(run)[:500]), "may be truncated"),
    "not json": (lambda tmp, run: write(tmp / "x.json", "hello"), "x.json: not valid JSON"),
    "not a run": (lambda tmp, run: write(tmp / "list.json", [1, 2]), "not a pytest-benchmark run"),
    "foreign": (
        lambda tmp, run: write(tmp / "other.json", {**run, "benchmarks": [{"name": "t", "extra_info": {}}]}),
        "other.json: a pytest-benchmark run with no optbench records",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(case, run_json, tmp_path, capsys):
    make, message = BAD_INPUTS[case]
    path = make(tmp_path, run_json)
    status, err = report(capsys, path, "--out", tmp_path / "out")
    assert status == 2
    assert message in err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("python -m optbench.report: error: ")
    assert not (tmp_path / "out").exists()


def test_a_bad_file_among_good_ones_is_skipped_with_a_warning(saved_run, tmp_path, capsys):
    folder = tmp_path / "runs"
    folder.mkdir()
    shutil.copy(saved_run, folder / "good.json")
    write(folder / "bad.json", "{")
    status, err = report(capsys, folder, "--out", tmp_path / "out")
    assert status == 0
    assert "warning: skipped " in err and "bad.json: not valid JSON" in err


def test_nan_and_diverged_records_are_reported_as_diverged(run_json, tmp_path, capsys):
    data = copy.deepcopy(run_json)
    broken = records(data)["sgd-bs10-cpu"]["extra_info"]
    broken["final_loss"] = float("nan")  # json.dumps writes NaN, as pytest-benchmark would
    path = write(tmp_path / "nan.json", json.dumps(data))
    status, err = report(capsys, path, "--out", tmp_path / "out")
    assert status == 0
    assert "nan.json: sgd-bs10-cpu holds NaN or missing final numbers; read as diverged" in err
    table = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("id")
    assert table.loc["sgd-bs10-cpu", "status"] == "diverged" and not table.loc["sgd-bs10-cpu", "passed"]


def test_an_unwritable_output_is_one_line_and_exit_2(saved_run, tmp_path, capsys):
    blocker = write(tmp_path / "file", "not a folder")
    status, err = report(capsys, saved_run, "--out", blocker / "report")
    assert status == 2
    assert f"{blocker / 'report'}: cannot be created" in err and "pass --out a writable folder" in err
    assert blocker.read_text() == "not a folder"


def test_compare_marks_regressions(run_json, tmp_path, capsys):
    machine = tmp_path / ".benchmarks" / "m"
    machine.mkdir(parents=True)
    write(machine / "0001_aaa_20260101_000000.json", run_json)
    candidate = copy.deepcopy(run_json)
    saved = records(candidate)
    saved["sgd-bs10-cpu"]["stats"]["median"] *= 2
    info = saved["adam-bs100-cpu"]["extra_info"]
    count = info["seeds"]
    info.update(status="diverged", seed_status=["diverged"] * count)
    # As the engine saves a diverged run: every metric of every seed is gone but the reference's.
    for name in [metric["name"] for metric in info["metrics"] if metric["name"] != "reference_loss"]:
        info.update({name: None, f"seed_{name}": [None] * count})
    write(machine / "0002_bbb_20260102_000000.json", candidate)
    out = tmp_path / "out"
    status, err = report(
        capsys, "--baseline", "1", "--candidate", "0002", "--benchmarks-dir", machine.parent, "--out", out
    )
    assert status == 0, err
    table = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("id")
    assert table.loc["sgd-bs10-cpu", "time_ratio"] == pytest.approx(2.0)
    assert table.loc["sgd-bs10-cpu", "regression"] == "median time x2 (tolerance x1.25)"
    assert table.loc["adam-bs100-cpu", "status_change"] == "converged -> diverged"
    assert table.loc["adam-bs100-cpu", "regression"] == "status converged -> diverged"
    assert "adam-bs100-cpu diverged (drawn up to the divergence); check its learning rate" in err
    assert table.loc["adam-bs10-cpu", "regression"] == ""
    assert table.loc["adam-bs10-cpu", "time_ratio"] == pytest.approx(1.0)
    assert (out / "index.html").read_text().count('<tr class="bad">') == 2
    assert (out / "loss_curves.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--baseline", "0001"], "--baseline and --candidate go together"),
        (["--baseline", "7", "--candidate", "8"], "save 0007: no "),
    ],
)
def test_compare_misuse(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        status = main([*argv, "--benchmarks-dir", str(tmp_path)])
        raise SystemExit(status)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_index_renders_headless_with_its_images(saved_run, tmp_path, capsys):
    out = tmp_path / "report"
    assert report(capsys, saved_run, "--out", out)[0] == 0
    # A copy of the page with a probe that records whether each image decoded.
    probe = "<script>addEventListener('load', () => { document.body.dataset.images = "
    probe += "[...document.images].map(i => i.complete && i.naturalWidth > 0).join(','); });</script>"
    page = out / "probe.html"
    page.write_text((out / "index.html").read_text().replace("</body>", probe + "</body>"))
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000", "--enable-logging=stderr",
        "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f'data-images="{",".join(["true"] * len(FIGURES))}"' in done.stdout
    assert "sgd-bs10-cpu" in done.stdout
    assert "net::ERR" not in done.stderr


SCHEMA_1_KEPT = (
    "id", "optimizer", "batch_size", "device", "epochs", "seed", "shuffle", "hyperparams", "steps", "status",
    "seconds", "slope", "intercept", "step_loss", "step_loss_stride", "expected_failure",
)  # fmt: skip
"""The fields schema 1 saved under today's names (no dtype, no seeds, no metric table)."""


def as_schema_1(info: dict) -> dict:
    """A record of today as schema 1 saved it: one seed, the line's numbers under their old names."""
    data = LineDataset(info["seed"])
    optimum = least_squares(data.x, data.y)
    assert optimum.mse == info["reference_loss"]  # the line's reference is its least-squares fit
    return {
        **{key: info[key] for key in SCHEMA_1_KEPT},
        "final_mse": info["final_loss"],
        "optimum_mse": info["reference_loss"],
        "optimum_slope": optimum.slope,
        "optimum_intercept": optimum.intercept,
        "target_slope": LINE.truth[0],
        "target_intercept": LINE.truth[1],
        "epoch_mse": info["epoch_loss"],
    }


def test_a_record_saved_before_seeds_reads_as_one_seed(run_json, tmp_path):
    older = copy.deepcopy(run_json)
    older["optbench_schema"] = 1
    bench = records(older)["sgd-bs10-cpu"]
    today = bench["extra_info"]
    bench["extra_info"] = old = as_schema_1(today)
    row = load([write(tmp_path / "old.json", older)]).frame.set_index("id").loc["sgd-bs10-cpu"]
    assert (row.seeds, row.seed_runs, row.pass_rate) == (1, "one", 1.0)
    assert row.epoch_loss_q50 == row.epoch_loss == old["epoch_mse"]
    assert row.seed_final_loss == [row.final_loss]
    assert row.excess_loss_q95 == row.excess_loss and row.passed
    assert row.slope_error_q50 == abs(row.slope - old["target_slope"])
    # The upgrade derives the line's metrics as the engine does today.
    for name in ("final_loss", "reference_loss", "excess_loss", "slope_error", "intercept_error"):
        assert row[name] == today[name], name


# What the report writes and where: all or nothing, into folders it owns, never over its inputs.

SCHEMA_3 = ROOT / "tests" / "data" / "runs" / "schema3.json"
SMALL = {"summary.csv": "id\nx\n", "summary.md": "# new\n", "index.html": "<p>new</p>"}
"""A quick stand-in for ``build``'s files, where the test is about writing them."""


def small_build(monkeypatch) -> None:
    monkeypatch.setattr(report_module, "build", lambda loaded, baseline=None, tuned=None: dict(SMALL))


def tree(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_markdown_tables_escape_html_and_pipes():
    table = pd.DataFrame(
        {"<b>id</b>": ["<script>alert(1)</script>", "a|b"], "run": ["<img src=x onerror=alert(1)>", "x & y"]}
    )
    text = markdown(table)
    assert "<" not in text and ">" not in text
    assert text.splitlines() == [
        "| &lt;b&gt;id&lt;/b&gt; | run |",
        "|---|---|",
        "| &lt;script&gt;alert(1)&lt;/script&gt; | &lt;img src=x onerror=alert(1)&gt; |",
        "| a\\|b | x &amp; y |",
    ]


def test_a_hostile_scenario_id_and_run_name_come_out_inert(tmp_path, capsys):
    data = json.loads(SCHEMA_3.read_text())
    data["benchmarks"][0]["extra_info"]["id"] = "<script>alert(1)</script>"
    run = write(tmp_path / "<img src=x onerror=alert(1)>.json", data)
    out = tmp_path / "report"
    status, err = report(capsys, run, "--out", out)
    assert status == 0, err
    for name in ("summary.md", "index.html"):
        page = (out / name).read_text()
        assert "<script>alert" not in page and "<img src=x" not in page, name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, name
        assert "&lt;img src=x onerror=alert(1)&gt;" in page, name


def test_a_report_is_written_with_its_marker_and_replaced_whole(tmp_path, capsys, monkeypatch):
    small_build(monkeypatch)
    out = tmp_path / "report"
    out.mkdir()  # an empty folder is free to take
    assert report(capsys, SCHEMA_3, "--out", out)[0] == 0
    assert json.loads((out / MARKER).read_text())["files"] == sorted(SMALL)
    monkeypatch.setattr(
        report_module, "build", lambda loaded, baseline=None, tuned=None: {"index.html": "again"}
    )
    assert report(capsys, SCHEMA_3, "--out", out)[0] == 0
    assert sorted(tree(out)) == [MARKER, "index.html"]  # the earlier report's other files went with it
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report"]


def test_a_folder_of_the_users_is_refused_unless_forced(tmp_path, capsys, monkeypatch):
    small_build(monkeypatch)
    out = tmp_path / "mine"
    out.mkdir()
    write(out / "index.html", "my page")
    write(out / "summary.csv", "my,table")
    status, err = report(capsys, SCHEMA_3, "--out", out)
    assert status == 2
    assert err.strip().splitlines() == [
        f"python -m optbench.report: error: {out}: holds files optbench did not write (index.html, "
        "summary.csv); pass --out a new or empty folder, or --force to write beside them"
    ]
    assert tree(out) == {"index.html": b"my page", "summary.csv": b"my,table"}
    write(out / "notes.txt", "mine")
    status, err = report(capsys, SCHEMA_3, "--out", out, "--force")
    assert status == 0, err
    assert tree(out) == {**{k: v.encode() for k, v in SMALL.items()}, "notes.txt": b"mine", MARKER: ANY}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mine"]


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "forced"])
def test_an_out_that_is_a_file_is_refused(force, tmp_path, capsys):
    blocker = write(tmp_path / "report", "my file")
    status, err = report(capsys, SCHEMA_3, "--out", blocker, *force)
    assert status == 2 and f"error: {blocker}: exists and is not a folder; pass --out" in err
    assert blocker.read_text() == "my file"


def test_a_missing_parent_is_refused_before_anything_is_read(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report_module, "load", lambda paths: pytest.fail("read before --out was checked"))
    status, err = report(capsys, SCHEMA_3, "--out", tmp_path / "no" / "report")
    assert status == 2
    assert err.strip().splitlines() == [
        f"python -m optbench.report: error: {tmp_path / 'no' / 'report'}: cannot be created (the folder "
        f"{tmp_path / 'no'} does not exist); pass --out a writable folder (only its last part is created)"
    ]


def test_no_report_is_written_over_its_inputs(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(SCHEMA_3, runs / "run.json")
    for argv in ([runs / "run.json", "--out", runs], [runs, "--out", runs], [runs, "--out", tmp_path]):
        status, err = report(capsys, *argv, "--force")
        assert status == 2 and err.count("\n") == 1, err
        assert "pass --out a folder apart from the inputs" in err
    machine = tmp_path / "bench" / "m"
    machine.mkdir(parents=True)
    shutil.copy(SCHEMA_3, machine / "0001_a_20260101_000000.json")
    status, err = report(capsys, "--benchmarks-dir", tmp_path / "bench", "--out", machine, "--force")
    assert status == 2 and f"{machine}: holds the input {machine / '0001_a_20260101_000000.json'}" in err
    assert sorted(path.name for path in runs.iterdir()) == ["run.json"]


@pytest.mark.parametrize("old", [True, False], ids=["over-a-report", "new"])
def test_ctrl_c_between_two_files_leaves_the_old_report_whole(
    old, tmp_path, capsys, monkeypatch, stop_the_second_write
):
    small_build(monkeypatch)
    out = tmp_path / "report"
    if old:
        files.write_folder(out, {"index.html": "old", "seed.png": b"old"}, "python -m optbench.report")
    before = tree(out) if old else None
    stop_the_second_write(KeyboardInterrupt)
    status, err = report(capsys, SCHEMA_3, "--out", out)
    assert status == 130 and "Traceback" not in err
    expected = f"{out} still holds the old report" if old else "nothing was written"
    assert err.strip().splitlines()[-1] == f"python -m optbench.report: interrupted; {expected}"
    assert (tree(out) == before) if old else not out.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == (["report"] if old else [])
