import pytest

from optbench import (
    ConvergenceError,
    Thresholds,
    Tolerances,
    assert_converged,
    assert_falls_faster,
    assert_not_regressed,
    epochs_to_converge,
    failures,
    regressions,
)
from optbench.checks import status

BOUNDS = Thresholds(excess_mse=0.5, slope=0.1, intercept=0.2)


def record(**fields):
    base = {
        "id": "x-bs1-cpu",
        "steps": 100,
        "final_mse": 0.3,
        "optimum_mse": 0.1,
        "slope": -5.05,
        "intercept": 1.1,
        "target_slope": -5.0,
        "target_intercept": 1.0,
        "epoch_mse": [200.0, 10.0, 0.3],
    }
    return {**base, **fields}


def test_a_run_inside_every_bound_passes():
    assert failures(record(), BOUNDS) == []
    assert status(record(), BOUNDS) == "converged"
    assert_converged(record(), BOUNDS)


def test_bounds_are_inclusive():
    edge = record(final_mse=0.6, slope=-5.0 + 0.1, intercept=1.0 - 0.2)
    assert failures(edge, Thresholds(excess_mse=0.5 + 1e-12, slope=0.1 + 1e-12, intercept=0.2 + 1e-12)) == []


def test_every_miss_is_named_with_its_numbers():
    bad = record(final_mse=0.9, slope=-4.5, intercept=1.5)
    assert failures(bad, BOUNDS) == [
        "excess MSE 0.8 > 0.5 (final 0.9, least-squares optimum 0.1)",
        "slope -4.5 is 0.5 from -5 (bound 0.1)",
        "intercept 1.5 is 0.5 from 1 (bound 0.2)",
    ]
    assert status(bad, BOUNDS) == "not_converged"
    with pytest.raises(
        ConvergenceError, match=r"^x-bs1-cpu did not converge: excess MSE 0.8 > 0.5 .*; slope"
    ):
        assert_converged(bad, BOUNDS)


def test_non_finite_is_divergence():
    gone = record(final_mse=None, slope=None, intercept=None, steps=300)
    assert failures(gone, BOUNDS) == ["diverged: the loss became NaN or infinite within 300 steps"]
    assert status(gone, BOUNDS) == "diverged"


def test_ending_above_the_start_is_divergence():
    worse = record(final_mse=1e30, epoch_mse=[200.0, 1e30])
    assert failures(worse, BOUNDS) == ["diverged: final MSE 1e+30 is above the initial 200"]
    assert status(worse, BOUNDS) == "diverged"


def test_nan_compares_as_a_miss():
    assert failures(record(slope=float("nan")), BOUNDS)[0].startswith("slope nan")


def test_epochs_to_converge():
    assert epochs_to_converge(record(epoch_mse=[200.0, 10.0, 0.59, 0.2]), BOUNDS) == 2
    assert epochs_to_converge(record(epoch_mse=[0.1, 10.0, 5.0]), BOUNDS) is None  # epoch 0 is the start
    assert epochs_to_converge(record(epoch_mse=[200.0, None]), BOUNDS) is None


def test_falls_faster():
    fast = record(id="sgd", epoch_mse=[200.0, 0.3, 0.2])
    slow = record(id="adam", epoch_mse=[200.0, 100.0, 0.3])
    assert_falls_faster(fast, slow, BOUNDS)
    with pytest.raises(ConvergenceError) as error:
        assert_falls_faster(slow, fast, BOUNDS)
    assert str(error.value) == (
        "adam does not fall faster than sgd: after epoch 1 its MSE is 100.0 against 0.3; "
        "it needs 2 epochs to converge against 1"
    )
    tie = record(id="tie", epoch_mse=[200.0, 0.3, 0.2])
    with pytest.raises(ConvergenceError, match="needs 1 epochs to converge against 1"):
        assert_falls_faster(tie, fast, BOUNDS)


TOLERANCES = Tolerances(excess_mse=0.05, slope=0.02, intercept=0.03, time_ratio=1.5)


def run_record(**fields):
    base = {
        "id": "x-bs1-cpu",
        "status": "converged",
        "final_mse": 0.2,
        "optimum_mse": 0.1,
        "slope": -5.01,
        "intercept": 1.02,
        "target_slope": -5.0,
        "target_intercept": 1.0,
        "median": 1.0,
    }
    return {**base, **fields}


def test_an_unchanged_run_has_no_regression():
    assert regressions(run_record(), run_record(), TOLERANCES) == []


def test_each_regression_is_named():
    worse = run_record(status="not_converged", final_mse=0.3, slope=-5.05, intercept=1.06, median=2.0)
    assert regressions(run_record(), worse, TOLERANCES) == [
        "status converged -> not_converged",
        "excess MSE grew by 0.1 (tolerance 0.05)",
        "slope moved 0.04 further from -5 (tolerance 0.02)",
        "intercept moved 0.04 further from 1 (tolerance 0.03)",
        "median time x2 (tolerance x1.5)",
    ]


def test_moving_towards_the_true_line_or_getting_better_is_no_regression():
    better = run_record(final_mse=0.1, slope=-4.995, intercept=0.99, median=0.5)
    assert regressions(run_record(), better, TOLERANCES) == []
    recovered = run_record()
    gone = run_record(status="diverged", final_mse=None, slope=None, intercept=None)
    assert regressions(gone, recovered, TOLERANCES) == []


def test_divergence_is_named_once():
    gone = run_record(status="diverged", final_mse=None, slope=None, intercept=None)
    assert regressions(run_record(), gone, TOLERANCES) == ["status converged -> diverged"]


def test_without_a_true_line_any_move_counts_and_missing_times_are_not_compared():
    before = {**run_record(), "target_slope": None, "target_intercept": None, "median": None}
    after = {**before, "slope": -4.97}
    assert regressions(before, after, TOLERANCES) == ["slope moved by 0.04 (tolerance 0.02)"]


def test_assert_not_regressed():
    baseline = {"x-bs1-cpu": run_record()}
    assert_not_regressed(run_record(median=100.0), baseline, TOLERANCES)  # timings are never compared here
    assert_not_regressed(run_record(id="new-bs1-cpu", final_mse=9.0), baseline, TOLERANCES)
    assert_not_regressed(run_record(), None, TOLERANCES)
    with pytest.raises(
        ConvergenceError, match=r"^x-bs1-cpu regressed against the baseline: excess MSE grew by 0.1 "
    ):
        assert_not_regressed(run_record(final_mse=0.3), baseline, TOLERANCES)


def seeds_record(excess, slopes=None, statuses=None, **fields):
    """A record of len(excess) seeds, each with optimum 0.1 and intercept 1."""
    count = len(excess)
    return record(
        **{"seed": 0, **fields},
        seeds=count,
        seed_final_mse=[None if e is None else 0.1 + e for e in excess],
        seed_optimum_mse=[0.1] * count,
        seed_slope=slopes or [-5.0] * count,
        seed_intercept=[1.0] * count,
        seed_status=statuses or ["converged" if e <= 0.5 else "not_converged" for e in excess],
    )


def test_many_seeds_are_judged_at_the_quantile():
    # The 0.95 nearest-rank quantile of 32 seeds is the 31st smallest: one seed may miss.
    one_over = seeds_record([0.2] * 31 + [2.0])
    assert failures(one_over, BOUNDS) == []
    two_over = seeds_record([0.2] * 30 + [2.0, 3.0])
    assert failures(two_over, BOUNDS) == [
        "excess MSE 2 > 0.5 at the 0.95 quantile of 32 seeds (2 of 32 seeds over)"
    ]
    assert status(two_over, BOUNDS) == "not_converged"
    every_seed = Thresholds(excess_mse=0.5, slope=0.1, intercept=0.2, quantile=1.0)
    assert failures(one_over, every_seed) == [
        "excess MSE 2 > 0.5 at the 1 quantile of 32 seeds (1 of 32 seeds over)"
    ]


def test_the_single_record_fields_do_not_decide_a_many_seed_verdict():
    # The first seed's own fields fail, but 31 of 32 seeds are inside every bound.
    assert failures(seeds_record([2.0] + [0.2] * 31, final_mse=2.1), BOUNDS) == []


def test_slope_misses_over_seeds_are_named():
    slopes = [-5.0] * 28 + [-4.0] * 4
    assert failures(seeds_record([0.2] * 32, slopes=slopes), BOUNDS) == [
        "slope error 1 > 0.1 at the 0.95 quantile of 32 seeds (4 of 32 seeds over)"
    ]


def test_too_many_diverged_seeds_make_the_record_diverged():
    statuses = ["converged"] * 30 + ["diverged"] * 2
    diverged = seeds_record([0.2] * 30 + [None, None], statuses=statuses, seed=7)
    assert failures(diverged, BOUNDS) == [
        "diverged: 2 of 32 seeds diverged (the 0.95 quantile lets 1 miss), seeds 37,38"
    ]
    assert status(diverged, BOUNDS) == "diverged"
    statuses = ["converged"] * 31 + ["diverged"]
    assert failures(seeds_record([0.2] * 31 + [None], statuses=statuses), BOUNDS) == []


def test_a_quantile_outside_0_to_1_is_refused():
    with pytest.raises(ValueError, match="quantile must be in"):
        Thresholds(excess_mse=0.5, slope=0.1, intercept=0.2, quantile=0.0)


def test_a_many_seed_record_regresses_when_its_quantile_grows():
    def make(count, q95):
        return seeds_record([0.1] * count, excess_mse_q95=q95, status="converged")

    assert regressions(make(32, 0.1), make(32, 0.2)) == [
        "0.95 quantile of the excess MSE over 32 seeds grew by 0.1 (tolerance 0.05)"
    ]
    assert regressions(make(32, 0.1), make(32, 0.12)) == []
    # A different number of seeds is a different population: only the first seed compares.
    assert regressions(make(32, 0.1), make(16, 0.2)) == []
