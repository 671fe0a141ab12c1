"""Calibrated verdicts as data: the packaged file, its validation, and how the registry takes it."""

import json

import pytest
import torch
from tuned_cases import case, tuned

from optbench import OPTIMIZERS, calibrate
from optbench.optimizers import Case, OptimizerInfo, Registry, verdicts
from optbench.optimizers.registry import measured
from optbench.problems import PROBLEMS

FILE = verdicts.read()
SUITE = [
    (name, problem.name, batch_size)
    for problem in calibrate.suite_problems()
    for name in OPTIMIZERS
    for batch_size in problem.batch_sizes
]


def verdict_file(*found: tuple[str, str, int, int, int]) -> verdicts.VerdictFile:
    rows = [
        verdicts.Verdict(optimizer=o, problem=p, batch_size=b, dtype="float32", seeds=n, converged=k)
        for o, p, b, n, k in found
    ]
    return verdicts.VerdictFile(optbench_verdicts=1, command="test", torch="x", verdicts=rows)


def test_the_packaged_file_holds_every_case_of_the_suite_over_more_than_100_seeds():
    assert sorted(verdict.key for verdict in FILE.verdicts) == sorted((*key, "float32") for key in SUITE)
    assert {verdict.seeds for verdict in FILE.verdicts} == {calibrate.SUITE_SEEDS}
    assert calibrate.SUITE_SEEDS >= 100
    assert FILE.command == verdicts.COMMAND


@pytest.mark.parametrize(("name", "problem", "batch_size"), SUITE)
def test_the_registry_expects_what_the_calibration_measured(name, problem, batch_size):
    verdict = FILE.find(name, problem, batch_size)
    expected = OPTIMIZERS[name].expected_failure(batch_size, problem=PROBLEMS[problem])
    if verdict.converged == verdict.seeds:
        assert expected is None
    else:
        reason, strict = expected
        assert f"converged on {verdict.converged} of {verdict.seeds} seeds" in reason
        assert strict == (verdict.converged == 0)


def test_the_suite_separates_optimizers():
    # SGD fails a problem at its tuned best where an adaptive method passes, and some problem
    # defeats an adaptive method (README, "The suite").
    def rate(name, problem, batch_size):
        verdict = FILE.find(name, problem, batch_size)
        return verdict.converged / verdict.seeds

    assert rate("sgd", "ill_conditioned", 100) == 0 and rate("adam", "ill_conditioned", 100) == 1
    assert rate("sgd", "rosenbrock", 1) == 0 and rate("adam", "rosenbrock", 1) == 1
    assert rate("rmsprop", "rosenbrock", 1) == 0 and rate("adagrad", "rosenbrock", 1) == 0


HAND = Registry(
    [
        OptimizerInfo(
            "sgd",
            "SGD",
            torch.optim.SGD,
            cases={
                ("line",): Case({"lr": 0.5}),
                ("rosenbrock",): Case({"momentum": 0.9}, epochs=7),
                ("logistic", 10): Case(fails="known by hand", strict=False),
            },
        )
    ]
)


def test_measured_adds_the_tuned_lr_and_the_verdict_off_the_line_only():
    files = tuned(case("sgd", "rosenbrock", 1), case("sgd", "line", 10), case("sgd", "sine", 10))
    found = verdict_file(("sgd", "rosenbrock", 1, 128, 0), ("sgd", "sine", 10, 128, 100))
    info = measured(HAND, files, found)["sgd"]
    rosenbrock, sine = PROBLEMS["rosenbrock"], PROBLEMS["sine"]
    assert info.hyperparams(1, problem=rosenbrock) == {
        "lr": files.find("sgd", "rosenbrock", 1).lr,
        "momentum": 0.9,
    }
    assert info.epochs_for(1, problem=rosenbrock) == 7
    assert info.expected_failure(1, problem=rosenbrock) == (
        "converged on 0 of 128 seeds at its tuned lr (docs/calibration-suite.md)",
        True,
    )
    assert info.expected_failure(10, problem=sine)[1] is False
    assert info.hyperparams(10) == {"lr": 0.5}  # the line keeps its hand-picked lr


def test_a_verdict_never_overrides_what_the_entry_says_by_hand():
    files = tuned(case("sgd", "logistic", 10), case("sgd", "sine", 10))
    found = verdict_file(("sgd", "logistic", 10, 128, 0), ("sgd", "sine", 10, 128, 128))
    info = measured(HAND, files, found)["sgd"]
    assert info.expected_failure(10, problem=PROBLEMS["logistic"]) == ("known by hand", False)
    assert info.expected_failure(10, problem=PROBLEMS["sine"]) is None
    assert measured(HAND, None, None)["sgd"] == HAND["sgd"]


def test_a_case_neither_tuned_nor_calibrated_may_fail_and_trains_at_the_smallest_batchs_lr():
    files = tuned(
        case("sgd", "noisy_quadratic", 100, passes=(1.0, 1.0, 1.0, 1.0), q95=(1e-2, 1e-3, 1e-4, 1e-5)),
        case("sgd", "noisy_quadratic", 10),
        case("sgd", "logistic", 10),
    )
    found = verdict_file(("sgd", "noisy_quadratic", 10, 128, 128), ("sgd", "noisy_quadratic", 100, 128, 128))
    info = measured(HAND, files, found)["sgd"]
    quadratic, logistic = PROBLEMS["noisy_quadratic"], PROBLEMS["logistic"]
    small, large = files.find("sgd", "noisy_quadratic", 10).lr, files.find("sgd", "noisy_quadratic", 100).lr
    assert small != large
    assert info.expected_failure(10, problem=quadratic) is None  # calibrated: it must converge
    assert info.hyperparams(100, problem=quadratic) == {"lr": large}
    for batch_size, dtype in [(1, "float32"), (50, "float32"), (10, "float64"), (100, "bfloat16")]:
        reason, strict = info.expected_failure(batch_size, problem=quadratic, dtype=dtype)
        assert reason == (
            "neither tuned nor calibrated at this batch size and dtype (noisy_quadratic is calibrated at "
            "batch size 10, 100 in float32); it trains at the lr tuned at batch size 10; python -m "
            "optbench.tune and python -m optbench.calibrate --suite measure it"
        )
        assert strict is False
    assert info.hyperparams(1, problem=quadratic) == {"lr": small}
    assert info.hyperparams(10, problem=quadratic, dtype="float64") == {"lr": small}
    # Tuned without a verdict: not calibrated anywhere; by hand at batch size 10: the hand decides there.
    assert "(logistic is calibrated nowhere)" in info.expected_failure(1, problem=logistic)[0]
    assert info.expected_failure(10, problem=logistic) == ("known by hand", False)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d.pop("optbench_verdicts"), "not an optbench verdicts file"),
        (lambda d: d["verdicts"][0].update(converged=200), "more than it trained"),
        (lambda d: d["verdicts"].append(dict(d["verdicts"][0])), "is given twice"),
        (lambda d: d["verdicts"][0].update(seeds="many"), "verdicts.0.seeds"),
    ],
)
def test_a_damaged_file_is_one_line_naming_it_and_the_fix(change, says, tmp_path):
    document = json.loads(verdicts.VERDICTS_FILE.read_text())
    change(document)
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps(document))
    with pytest.raises(verdicts.VerdictError, match=says) as caught:
        verdicts.read(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)) and "regenerate it with" in message


def test_not_json_and_missing_files_are_one_line(tmp_path):
    path = tmp_path / "verdicts.json"
    path.write_text("{")
    with pytest.raises(verdicts.VerdictError, match="not valid JSON"):
        verdicts.read(path)
    with pytest.raises(verdicts.VerdictError, match="cannot be read"):
        verdicts.read(tmp_path / "missing.json")


def test_a_small_suite_calibration_writes_its_table_and_verdicts(tmp_path):
    out, found = tmp_path / "suite.md", tmp_path / "verdicts.json"
    argv = ["--suite", "--problems=logistic", "--optimizers=sgd,rprop", "--seeds=4", "--workers=1"]
    assert calibrate.main([*argv, f"--out={out}", f"--verdicts={found}"]) == 0
    written = verdicts.read(found)
    assert [v.key for v in written.verdicts] == [
        ("sgd", "logistic", 10, "float32"),
        ("rprop", "logistic", 10, "float32"),
    ]
    assert all(v.seeds == 4 for v in written.verdicts)
    text = out.read_text()
    sgd = written.find("sgd", "logistic", 10)
    lr = OPTIMIZERS["sgd"].hyperparams(10, problem=PROBLEMS["logistic"])["lr"]
    assert f"| sgd | {lr:g} | 10 | {sgd.converged}/4 |" in text
    assert "| optimizer | logistic (bs 10) |" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--verdicts=v.json"], "--verdicts: only the suite's calibration (--suite) writes verdicts"),
        (["--suite", "--dtypes=float64"], "--suite calibrates float32"),
    ],
)
def test_suite_misuse_is_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        calibrate.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
