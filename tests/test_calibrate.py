"""``python -m optbench.calibrate``: options shared with the plugin, the float64 re-runs, the table."""

import pytest

from optbench import calibrate


def test_a_small_calibration_writes_its_table(tmp_path):
    out = tmp_path / "calibration.md"
    argv = ["--optimizers=sgd", "--batch-sizes=100", "--seeds=2", "--workers=1", "--no-seed-profile"]
    assert calibrate.main([*argv, f"--out={out}"]) == 0
    text = out.read_text()
    assert "| default | sgd | 100 | 2/2 |" in text
    assert "| sgd | 100 |" in text.split("The combinations that moved most")[1]


def test_the_tolerance_runs_train_in_float64_so_rounding_moves_every_result():
    runs = calibrate.measure(["sgd", "adam"], [100], seeds=2, workers=1, seed_profile=False)
    assert sorted(set(runs.profile)) == ["default", "float64"]
    changes = calibrate.drift(runs)
    assert len(changes) == 2
    # float32 and float64 round differently at every step: a zero change means both ran in one dtype
    assert (changes.slope > 0).all() and (changes.intercept > 0).all(), changes


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch-sizes=0"], "argument --batch-sizes: batch sizes must be positive integers, got '0'"),
        (["--dtypes=float16"], "argument --dtypes: unknown dtype 'float16'; choose from float32, float64, "),
        (["--optimizers=nosuch"], "--optimizers: unknown optimizer 'nosuch'; choose from adadelta, "),
        (["--seeds=0"], "--seeds: expected a positive integer, got 0"),
    ],
)
def test_bad_options_are_one_line_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        calibrate.main(argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"python -m optbench.calibrate: error: {message}")
