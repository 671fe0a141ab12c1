"""Learning-rate schedules as an axis: torch's LambdaLR stepped per step, ids, replicas, sweeps, tuning."""

import math
from dataclasses import replace
from functools import partial

import pytest
import torch

from optbench import LINE, OPTIMIZERS, Scenario, prepare, run, summarise
from optbench.engine import Sequential, Vectorised, fit
from optbench.engine.sweep import fit_points
from optbench.problems import PROBLEMS
from optbench.schedules import CONSTANT, SCHEDULES, WARMUP_FRACTION, ScheduleError, attach, warmup_steps
from optbench.tune.sweep import Job, sweep_case

CPU = ("--optbench-devices=cpu", "-p", "no:cacheprovider")
EXPECTED = {
    "cosine": lambda t, n: 0.5 * (1 + math.cos(math.pi * t / n)),
    "linear": lambda t, n: 1 - t / n,
}


def learning_rates(schedule: str, steps: int, lr: float = 0.5) -> list[float]:
    """The lr each of ``steps`` SGD steps ran at under ``schedule``."""
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([param], lr=lr)
    schedulers = attach(schedule, optimizer, steps, "test")
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        param.grad = torch.ones(3)
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return seen


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_each_step_runs_at_the_documented_factor_of_the_lr(schedule):
    assert learning_rates(schedule, 40) == pytest.approx([0.5 * EXPECTED[schedule](t, 40) for t in range(40)])


def test_warmup_cosine_warms_up_over_its_fraction_of_the_steps_then_decays():
    seen = learning_rates("warmup-cosine", 40)
    warm = warmup_steps(40)
    assert warm == round(WARMUP_FRACTION * 40) == 4
    assert seen[:warm] == pytest.approx([0.5 * (t + 1) / (warm + 1) for t in range(warm)])
    assert seen[warm] == pytest.approx(0.5)  # the peak, then cosine over the other 36 steps
    assert seen[warm:] == pytest.approx([0.5 * EXPECTED["cosine"](t, 36) for t in range(36)])
    assert warmup_steps(3) == 1  # at least one step, however short the run


def test_constant_attaches_nothing_and_runs_as_always():
    assert attach(CONSTANT, torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))]), 10, "x") == ()
    assert learning_rates(CONSTANT, 5) == [0.5] * 5
    scenario = OPTIMIZERS["adam"].scenario(10)
    assert scenario.schedule == CONSTANT and scenario.id == "adam-bs10-cpu"
    assert run(scenario)["final_loss"] == run(replace(scenario, schedule="constant"))["final_loss"]


def test_ids_carry_a_schedule_between_the_problem_and_the_dtype():
    adam = OPTIMIZERS["adam"]
    assert adam.scenario(10, schedule="cosine").id == "adam-bs10-cpu-cosine"
    sine = OPTIMIZERS["adam"].scenario(1, schedule="warmup-cosine", dtype="float64", problem=PROBLEMS["sine"])
    assert sine.id == "adam-bs1-cpu-sine-warmup-cosine-float64"
    assert set(SCHEDULES) == {"constant", "cosine", "warmup-cosine", "linear"}


def test_a_schedule_changes_the_run():
    plain, cosine = (
        run(OPTIMIZERS["sgd"].scenario(10)),
        run(OPTIMIZERS["sgd"].scenario(10, schedule="cosine")),
    )
    assert plain["final_loss"] != cosine["final_loss"]
    assert cosine["id"].endswith("-cosine")
    assert (plain["schedule"], cosine["schedule"]) == ("constant", "cosine")


def test_an_unknown_schedule_and_a_problem_named_as_one_are_refused():
    with pytest.raises(ValueError, match="scenario schedule 'step' is not one of constant, cosine"):
        OPTIMIZERS["sgd"].scenario(10, schedule="step")
    with pytest.raises(ValueError, match="problem name 'cosine' is a schedule's"):
        Scenario("sgd", partial(torch.optim.SGD, lr=0.1), 10, problem=replace(LINE, name="cosine"))


@pytest.mark.parametrize("schedule", ["cosine", "warmup-cosine", "linear"])
def test_replicas_under_a_schedule_match_their_seeds_alone_bit_for_bit(schedule):
    scenario = OPTIMIZERS["adam"].scenario(10, seeds=4, epochs=3, shuffle=True, schedule=schedule)
    ready = prepare(scenario)
    assert isinstance(ready, Vectorised) and ready.replicas.schedulers
    stacked = summarise(fit(ready))
    alone = prepare(replace(scenario, elementwise=False))
    assert isinstance(alone, Sequential)
    one_by_one = summarise(fit(alone))
    for name in ("seed_final_loss", "seed_excess_loss", "seed_distance", "epoch_loss", "step_loss"):
        assert stacked[name] == one_by_one[name], name


def test_muons_pair_gets_a_scheduler_each_and_a_foreign_optimizer_a_clear_error():
    muon = prepare(OPTIMIZERS["muon"].scenario(10, schedule="linear"))
    assert len(muon.schedulers) == 2
    assert run(OPTIMIZERS["muon"].scenario(10, schedule="linear"))["status"] == "converged"

    class Bare:
        def __init__(self):
            self.param_groups = [{"params": [], "lr": 0.1}]

    with pytest.raises(
        ScheduleError, match=r"x: the cosine schedule needs a torch.optim.Optimizer, and Bare"
    ):
        attach("cosine", Bare(), 10, "x")


@pytest.mark.parametrize("schedule", ["cosine", "warmup-cosine"])
def test_a_stacked_sweep_under_a_schedule_is_each_points_own_run(schedule):
    # lr 30 diverges within an epoch and leaves the stacked optimizer; the schedulers still step the
    # groups by their places, so the other points keep their own schedules.
    info = OPTIMIZERS["sgd"]
    base = info.scenario(10, seeds=2, epochs=4, schedule=schedule)
    points = []
    for lr in (0.003, 30.0, 0.03):
        hyperparams = {**dict(base.hyperparams), "lr": lr}
        points.append(
            replace(
                base,
                optimizer=partial(info.factory, **hyperparams),
                hyperparams=tuple(sorted(hyperparams.items())),
            )
        )
    swept = fit_points(points)
    assert swept.stacked
    assert summarise(swept.fitted[1])["seed_status"] == ["diverged", "diverged"]
    timed = ("seconds", "target_seconds", "seed_target_seconds")
    for point, fitted in zip(points, swept.fitted, strict=True):
        mine = {k: v for k, v in summarise(fitted).items() if k not in timed}
        own = {k: v for k, v in run(point).items() if k not in timed}
        assert mine == own, point.id


def test_tuning_is_per_schedule():
    plain = Job(OPTIMIZERS["sgd"], LINE, 10, grid=(0.01, 0.03, 0.1), seeds=4)
    cosine = replace(plain, schedule="cosine")
    assert plain.cache_key() != cosine.cache_key()
    assert cosine.name == "sgd-bs10-cpu-cosine"
    row = sweep_case(cosine)
    assert row.schedule == "cosine" and row.key[-1] == "cosine"
    assert sweep_case(plain).schedule == CONSTANT


def test_the_plugin_crosses_the_schedules_and_marks_them_uncalibrated(small_matrix):
    result = small_matrix.runpytest(
        "--optbench-optimizers=sgd",
        "--optbench-problems=line",
        "--optbench-batch-sizes=10",
        "--optbench-schedules=constant,cosine,warmup-cosine,linear",
        "--benchmark-disable",
        "-v",
        "-rxX",
        *CPU,
    )
    result.stdout.fnmatch_lines(
        [
            "*test_converges?sgd-bs10-cpu? PASSED*",
            "*test_converges?sgd-bs10-cpu-cosine? XPASS*",
            "*test_converges?sgd-bs10-cpu-warmup-cosine? XPASS*",
            "*test_converges?sgd-bs10-cpu-linear? XPASS*",
            "*this schedule was neither tuned nor calibrated: it trains at the constant schedule's lr;*",
        ]
    )


def test_the_plugin_tunes_each_schedule(small_matrix):
    result = small_matrix.runpytest(
        "--optbench-optimizers=sgd",
        "--optbench-problems=line",
        "--optbench-batch-sizes=10",
        "--optbench-schedules=constant,cosine",
        "--optbench-tune",
        "--optbench-lr-grid=0.003,0.01,0.03,0.1",
        "--optbench-tune-seeds=4",
        "--benchmark-disable",
        *CPU,
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["sgd-bs10-cpu: lr *", "sgd-bs10-cpu-cosine: lr *"])


def test_a_bad_schedule_is_a_one_line_usage_error(small_matrix):
    result = small_matrix.runpytest("--optbench-schedules=cosine,step", *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--optbench-schedules: unknown schedule 'step'; choose from constant, cosine*"]
    )


def test_a_strict_expected_failure_at_the_constant_schedule_is_not_strict_on_another(small_matrix):
    # bfloat16 stalls Adam at batch size 1 on the line: a strict expected failure, measured at the constant
    # schedule. Under cosine nothing was measured, so the case says so and a pass must not fail the run.
    result = small_matrix.runpytest(
        "--optbench-optimizers=adam",
        "--optbench-problems=line",
        "--optbench-batch-sizes=1",
        "--optbench-dtypes=bfloat16",
        "--optbench-schedules=constant,cosine",
        "--optbench-seeds=1",
        "--benchmark-disable",
        "-rxX",
        *CPU,
    )
    assert result.ret == 0, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(
        [
            "*adam-bs1-cpu-cosine-bfloat16*this schedule was neither tuned nor calibrated: it trains at the "
            "constant schedule's lr (there: bfloat16 drops steps*"
        ]
    )
