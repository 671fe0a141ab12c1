"""The report's sensitivity figure: a tuned-settings file's sweeps, as plot data, drawn, and in the report."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.colors import to_hex
from tuned_cases import GRID, PASSES, case, tuned

from optbench import report as report_module
from optbench.files import MARKER, write_folder
from optbench.plots import data as plotdata
from optbench.plots import render, style
from optbench.report import main
from optbench.results import load
from optbench.tune import settings
from optbench.tune.settings import CaseRow

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_3 = ROOT / "tests" / "data" / "runs" / "schema3.json"
"""A real run of sgd and adam on the line at batch sizes 10 and 100, and the seed profile."""


def write_tuned(path: Path, *cases: CaseRow) -> Path:
    settings.write(path, cases, "test")
    return path


def report(capsys, *argv):
    status = main([str(arg) for arg in argv])
    return status, capsys.readouterr().err


@pytest.fixture(autouse=True)
def no_packaged_file(monkeypatch, tmp_path) -> Path:
    """Where the report looks for the packaged tuned settings: nothing there until a test writes it."""
    path = tmp_path / "packaged" / "tuned.json"
    path.parent.mkdir()
    monkeypatch.setattr(settings, "TUNED_FILE", path)
    return path


@pytest.fixture(scope="session")
def swept(tmp_path_factory) -> Path:
    """A real tuned-settings file: sgd and adam on the line at batch sizes 10 and 100, four seeds per lr."""
    path = tmp_path_factory.mktemp("tuned") / "tuned.json"
    command = [
        sys.executable, "-m", "optbench.tune", "--optimizers", "sgd,adam", "--problems", "line",
        "--batch-sizes", "10,100", "--lr-grid", "0.001,0.01,0.1,1", "--tune-seeds", "4", "--jobs", "1",
        "--out", str(path),
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_XDIST_WORKER"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return path


# The plot data.


def test_a_row_per_case_and_point_with_its_chosen_lr_marked():
    cases = [
        case("sgd"),
        case("adam", batch_size=100, passes=(1.0, 1.0, 1.0, 1.0), q95=(1e-2, 1e-3, 1e-4, 1e-5)),
    ]
    curves = plotdata.sensitivity_curves(tuned(*cases))
    assert list(curves.columns) == plotdata.SENSITIVITY
    assert len(curves) == 8
    sgd = curves[curves.optimizer == "sgd"]
    assert sgd.lr.tolist() == GRID and sgd.pass_rate.tolist() == list(PASSES)
    assert sgd.excess_q95.tolist()[:3] == [2.0, 1e-3, 1e-2] and math.isnan(sgd.excess_q95.iloc[3])
    assert sgd.chosen.tolist() == [False, True, False, False]  # lr 0.01, inside the window 0.01-0.1
    adam = curves[curves.optimizer == "adam"]
    assert cases[1].lr == 0.1 and adam.chosen.tolist() == [False, False, True, False]  # the middle, lower
    assert curves.chosen.dtype == bool and curves.batch_size.tolist() == [10] * 4 + [100] * 4


def test_panels_are_named_by_problem_and_batch_size_and_a_dtype_other_than_float32():
    cases = [
        case("sgd", batch_size=100),
        case("sgd", batch_size=10, dtype="float64"),
        case("sgd", batch_size=10, dtype="bfloat16"),
        case("adam", batch_size=10),
        case("sgd", batch_size=10),
        case("sgd", problem="plane", batch_size=1),
    ]
    curves = plotdata.sensitivity_curves(tuned(*cases))
    assert list(dict.fromkeys(curves.panel)) == [
        "line, batch size 10",  # float32 first, the others by name
        "line, batch size 10, bfloat16",
        "line, batch size 10, float64",
        "line, batch size 100",
        "plane, batch size 1",
    ]
    first = curves[curves.panel == "line, batch size 10"]
    assert list(dict.fromkeys(first.optimizer)) == ["adam", "sgd"] and set(first.dtype) == {"float32"}
    assert set(curves[curves.panel == "line, batch size 10, float64"].dtype) == {"float64"}


def test_only_the_runs_optimizers_on_their_problems_are_kept():
    file = tuned(case("sgd"), case("adam"), case("mine"), case("sgd", problem="plane"))
    pairs = plotdata.run_cases(load([SCHEMA_3]).frame)
    assert pairs == {("sgd", "line"), ("adam", "line"), ("seed.sgd", "line"), ("seed.adam", "line")}
    kept = plotdata.sensitivity_curves(file, pairs)
    assert set(zip(kept.optimizer, kept.problem, strict=True)) == {("sgd", "line"), ("adam", "line")}
    assert len(kept) == 2 * len(GRID)
    assert set(plotdata.sensitivity_curves(file, [("sgd", "plane")]).panel) == {"plane, batch size 10"}
    none = plotdata.sensitivity_curves(file, {("other", "line")})
    assert len(none) == 0 and list(none.columns) == plotdata.SENSITIVITY


# The drawing.


def test_the_figure_has_two_rows_per_panel_a_line_per_optimizer_and_one_legend():
    names = [f"opt{index:02d}" for index in range(14)]
    cases = [case(name, batch_size=size) for name in names for size in (1, 10, 50, 100, 500)]
    curves = plotdata.sensitivity_curves(tuned(*cases))
    figure = render.sensitivity_figure(curves)
    assert len(figure.axes) == 10  # five panels, four side by side: two bands of two rows
    tops, bottoms = figure.axes[0::2], figure.axes[1::2]
    assert [axis.get_title() for axis in tops] == list(dict.fromkeys(curves.panel))
    for top, bottom in zip(tops, bottoms, strict=True):
        assert top.get_xscale() == bottom.get_xscale() == "log" and bottom.get_yscale() == "log"
        threshold = [line for line in top.get_lines() if to_hex(line.get_color()) == render.THRESHOLD_COLOUR]
        assert [line.get_ydata()[0] for line in threshold] == [0.95]
        assert threshold[0].get_linestyle() == "--"
        lines = bottom.get_lines()
        # A look per optimizer (style.looks): fourteen colours, each its own.
        drawn = [(to_hex(line.get_color()), line.get_linestyle(), line.get_marker()) for line in lines]
        assert drawn == [(look.colour, look.linestyle, look.marker) for look in style.looks(names).values()]
        assert len(set(drawn)) == 14 and len({colour for colour, _, _ in drawn}) == 14
        assert all(line.get_xdata().tolist() == GRID for line in lines)
        ys = lines[0].get_ydata()
        assert ys.tolist()[:3] == [2.0, 1e-3, 1e-2] and math.isnan(ys[3])  # a gap where it diverged
        chosen, diverged = bottom.collections
        assert chosen.get_offsets()[:, 0].tolist() == [0.01] * 14
        assert diverged.get_offsets()[:, 0].tolist() == [1.0] * 14 and diverged.get_offsets()[0, 1] == 1.0
        assert top.get_legend() is None and bottom.get_legend() is None
    (legend,) = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == [*names, "chosen lr", "pass rate 0.95", "diverged (q95 infinite)"]
    assert render.png(figure)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_blown_up_sweep_runs_off_the_top_and_a_zero_sits_on_the_bottom_edge():
    blown = case("blown", passes=(1.0, 1.0, 0.0, 0.0), q95=(0.0, 1e-3, 1e20, 1e40))
    cases = [blown, *(case(f"opt{index:02d}") for index in range(12))]
    bottom = render.sensitivity_figure(plotdata.sensitivity_curves(tuned(*cases))).axes[1]
    low, high = bottom.get_ylim()
    assert 2.0 < high < 100  # a decade above nine tenths of the points (all but blown's two at most 2.0)
    assert low < 1e-3
    line = bottom.get_lines()[0]  # blown's, the first name
    assert line.get_ydata().tolist() == [low, 1e-3, 1e20, 1e40]
    chosen = bottom.collections[0].get_offsets()
    assert chosen[0].tolist() == [0.001, low]  # its chosen lr, at 0, on the bottom edge


# In the report.


def test_the_report_draws_the_sweeps_of_its_runs_optimizers(swept, tmp_path, capsys, monkeypatch):
    mixed = settings.read(swept)
    path = write_tuned(tmp_path / "mixed.json", *mixed.cases, case("mine"), case("sgd", problem="plane"))
    drawn = []

    def spy(curves: pd.DataFrame, **options):
        drawn.append(curves)
        return real(curves, **options)

    real = render.sensitivity_figure
    monkeypatch.setattr(render, "sensitivity_figure", spy)
    out = tmp_path / "report"
    status, err = report(capsys, SCHEMA_3, "--tuned", path, "--out", out)
    assert status == 0, err
    assert (out / "sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sensitivity.png" in json.loads((out / MARKER).read_text())["files"]
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == len(list(out.glob("*.png"))) == 4  # no time to target
    assert "<h3>sensitivity.png</h3>" in page
    (curves,) = drawn
    assert set(zip(curves.optimizer, curves.problem, strict=True)) == {("sgd", "line"), ("adam", "line")}
    assert list(dict.fromkeys(curves.panel)) == ["line, batch size 10", "line, batch size 100"]
    assert len(curves) == 4 * len(GRID)
    chosen = curves[curves.chosen].set_index(["optimizer", "batch_size"]).lr
    assert chosen.to_dict() == {(row.optimizer, row.batch_size): row.lr for row in mixed.cases}


def test_the_packaged_file_is_the_default(swept, no_packaged_file, tmp_path, capsys):
    no_packaged_file.write_bytes(swept.read_bytes())
    out = tmp_path / "report"
    status, err = report(capsys, SCHEMA_3, "--out", out)
    assert status == 0, err
    assert (out / "sensitivity.png").exists()


def test_no_figure_without_the_packaged_file_or_a_case_of_the_runs(no_packaged_file, tmp_path, capsys):
    status, err = report(capsys, SCHEMA_3, "--out", tmp_path / "plain")
    assert status == 0, err
    assert (tmp_path / "plain" / "loss_curves.png").exists() and not (
        tmp_path / "plain" / "sensitivity.png"
    ).exists()
    assert "tuned" not in err and "sensitivity" not in err and "warning" not in err
    write_tuned(no_packaged_file, case("mine"), case("sgd", problem="plane"))
    explicit = write_tuned(tmp_path / "other.json", case("mine"))
    for argv in ([], ["--tuned", explicit]):
        out = tmp_path / f"report{len(argv)}"
        status, err = report(capsys, SCHEMA_3, *argv, "--out", out)
        assert status == 0, err
        assert "warning" not in err and "sensitivity.png" not in err, err
        assert (out / "index.html").exists() and not (out / "sensitivity.png").exists()
        pngs = {path.name for path in out.glob("*.png")}
        assert pngs == {"loss_curves.png", "pass_rate.png", "seed.png"}  # schema 3 saved no time to target
        assert (out / "index.html").read_text().count("data:image/png;base64,") == 3


def test_a_damaged_packaged_file_is_a_warning_and_no_figure(no_packaged_file, tmp_path, capsys):
    no_packaged_file.write_text("{")
    out = tmp_path / "report"
    status, err = report(capsys, SCHEMA_3, "--out", out)
    assert status == 0, err
    (warning,) = [line for line in err.splitlines() if "warning" in line]
    assert warning.startswith(f"python -m optbench.report: warning: {no_packaged_file}: not valid JSON (")
    assert warning.endswith("; regenerate it with python -m optbench.tune --out; no sensitivity.png")
    assert (out / "index.html").exists() and not (out / "sensitivity.png").exists()


def _inconsistent(tmp: Path) -> Path:
    data = json.loads(settings.dumps([case("sgd")], "test"))
    data["cases"][0]["lr"] = 1.0  # not what the rule chooses from its points
    return write_json(tmp / "edited.json", data)


def write_json(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


BAD_TUNED = {
    "missing": (lambda tmp: tmp / "nope.json", "nope.json: cannot be read (No such file or directory)"),
    "a folder": (lambda tmp: tmp, "not a regular file"),
    "not json": (lambda tmp: write_json(tmp / "x.json", "{"), "x.json: not valid JSON"),
    "foreign": (
        lambda tmp: write_json(tmp / "run.json", {"benchmarks": []}),
        "not an optbench tuned-settings",
    ),
    "edited": (_inconsistent, "edited.json: cases.0: Value error, its lr, window and tunability are not"),
}


@pytest.mark.parametrize("bad", list(BAD_TUNED))
def test_a_bad_tuned_file_given_is_one_line_and_exit_2(bad, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report_module, "load", lambda paths: pytest.fail("runs read before --tuned"))
    make, message = BAD_TUNED[bad]
    folder = tmp_path / "in"
    folder.mkdir()
    path = make(folder)
    status, err = report(capsys, SCHEMA_3, "--tuned", path, "--out", tmp_path / "out")
    assert status == 2
    (line,) = err.splitlines()
    assert line.startswith(f"python -m optbench.report: error: {path}") and message in line, line
    assert not (tmp_path / "out").exists()


def test_a_tuned_file_inside_out_is_refused(swept, tmp_path, capsys):
    out = tmp_path / "report"
    write_folder(out, {"index.html": "old"}, "python -m optbench.report")
    inside = out / "tuned.json"
    inside.write_bytes(swept.read_bytes())
    status, err = report(capsys, SCHEMA_3, "--tuned", inside, "--out", out, "--force")
    assert status == 2
    assert err.strip().splitlines() == [
        f"python -m optbench.report: error: {out}: holds the input {inside}; writing there could delete it; "
        "pass --out a folder apart from the inputs"
    ]
    assert sorted(path.name for path in out.iterdir()) == sorted([MARKER, "index.html", "tuned.json"])
