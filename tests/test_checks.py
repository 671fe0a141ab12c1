import pytest

from optbench import (
    LINE,
    ConvergenceError,
    Metric,
    Thresholds,
    Tolerances,
    assert_converged,
    assert_falls_faster,
    assert_not_regressed,
    epochs_to_converge,
    failures,
    regressions,
)
from optbench.record.checks import status

BOUNDS = Thresholds(bounds={"excess_loss": 0.5, "slope_error": 0.1, "intercept_error": 0.2})
TABLE = [metric.as_dict() for metric in LINE.table]
"""The line's metric table, as a record carries it: bounds excess 0.3, slope 0.2, intercept 0.3."""


def _minus(a, b):
    return None if a is None or b is None else a - b


def _off(value, target):
    return None if value is None else abs(value - target)


def record(**fields):
    """A one-seed record of the line; the errors follow from the fit (true line -5x + 1) unless given."""
    base = {
        "id": "x-bs1-cpu",
        "problem": "line",
        "metrics": TABLE,
        "steps": 100,
        "final_loss": 0.3,
        "reference_loss": 0.1,
        "distance": 0.05,
        "slope": -5.05,
        "intercept": 1.1,
        "epoch_loss": [200.0, 10.0, 0.3],
        **fields,
    }
    base.setdefault("excess_loss", _minus(base["final_loss"], base["reference_loss"]))
    base.setdefault("slope_error", _off(base["slope"], -5.0))
    base.setdefault("intercept_error", _off(base["intercept"], 1.0))
    return base


def test_a_run_inside_every_bound_passes():
    assert failures(record(), BOUNDS) == []
    assert status(record(), BOUNDS) == "converged"
    assert_converged(record(), BOUNDS)


def test_bounds_are_inclusive():
    edge = record(final_loss=0.6, slope=-5.0 + 0.1, intercept=1.0 - 0.2)
    loose = {"excess_loss": 0.5 + 1e-12, "slope_error": 0.1 + 1e-12, "intercept_error": 0.2 + 1e-12}
    assert failures(edge, Thresholds(bounds=loose)) == []
    exact = record(excess_loss=0.5, slope_error=0.1, intercept_error=0.2)
    assert failures(exact, BOUNDS) == []
    assert failures(record(excess_loss=0.5 + 1e-9), BOUNDS) == [
        "excess MSE 0.5 > 0.5 (final 0.3, reference 0.1)"
    ]


def test_every_miss_is_named_with_its_numbers():
    bad = record(final_loss=0.9, slope=-4.5, intercept=1.5)
    assert failures(bad, BOUNDS) == [
        "excess MSE 0.8 > 0.5 (final 0.9, reference 0.1)",
        "slope error 0.5 > 0.1",
        "intercept error 0.5 > 0.2",
    ]
    assert status(bad, BOUNDS) == "not_converged"
    with pytest.raises(
        ConvergenceError, match=r"^x-bs1-cpu did not converge: excess MSE 0.8 > 0.5 .*; slope error"
    ):
        assert_converged(bad, BOUNDS)


def test_non_finite_is_divergence():
    gone = record(final_loss=None, slope=None, intercept=None, steps=300)
    assert failures(gone, BOUNDS) == ["diverged: the loss became NaN or infinite within 300 steps"]
    assert status(gone, BOUNDS) == "diverged"
    # One bounded metric gone is enough, even with a finite loss.
    assert failures(record(slope=None), BOUNDS) == [
        "diverged: the loss became NaN or infinite within 100 steps"
    ]


def test_ending_far_above_the_start_is_divergence():
    worse = record(final_loss=1e30, epoch_loss=[200.0, 1e30])
    assert failures(worse, BOUNDS) == [
        "diverged: final loss 1e+30 is more than 2 times as far above the reference 0.1 as the initial 200"
    ]
    assert status(worse, BOUNDS) == "diverged"


def test_nan_is_a_miss_read_as_diverged_as_none_is():
    # A saved record writes a non-finite number as null; a row read into pandas holds NaN. Both mean
    # the number is gone, so both read as diverged, never as a pass.
    nan, none = failures(record(slope=float("nan")), BOUNDS), failures(record(slope=None), BOUNDS)
    assert nan == none == ["diverged: the loss became NaN or infinite within 100 steps"]
    assert status(record(final_loss=float("nan")), BOUNDS) == "diverged"


def test_bounds_come_from_the_records_metric_table():
    inside = record(final_loss=0.39, slope=-5.19, intercept=1.29)  # the line's bounds 0.3, 0.2, 0.3
    assert failures(inside) == []
    outside = record(final_loss=0.45, slope=-5.25, intercept=1.35)
    assert failures(outside) == [
        "excess MSE 0.35 > 0.3 (final 0.45, reference 0.1)",
        "slope error 0.25 > 0.2",
        "intercept error 0.35 > 0.3",
    ]
    # The table the record carries decides, not the line's: here only a looser excess bound.
    table = [{**m, "bound": 1.0} if m["name"] == "excess_loss" else m for m in TABLE]
    assert failures(record(final_loss=0.45, metrics=table)) == []
    assert failures(record(final_loss=1.2, metrics=table)) == [
        "excess MSE 1.1 > 1 (final 1.2, reference 0.1)"
    ]
    # A metric the table does not bound is reported, never judged.
    assert failures(record(distance=1e6)) == []


def test_the_bounds_are_the_same_for_every_dtype():
    for fields in ({}, {"final_loss": 0.45, "slope": -5.25, "intercept": 1.35}):
        verdicts = [failures(record(dtype=dtype, **fields)) for dtype in ("float32", "float64", "bfloat16")]
        assert verdicts[0] == verdicts[1] == verdicts[2]
    assert failures(record(dtype="bfloat16", final_loss=0.45)) == [
        "excess MSE 0.35 > 0.3 (final 0.45, reference 0.1)"
    ]


def test_thresholds_bounds_override_the_table():
    outside = record(final_loss=0.45, slope=-5.25)
    assert failures(outside, Thresholds(bounds={"excess_loss": 0.4})) == ["slope error 0.25 > 0.2"]
    assert failures(outside, Thresholds(bounds={"excess_loss": 0.4, "slope_error": 0.3})) == []
    tighter = Thresholds(bounds={"intercept_error": 0.05})
    assert failures(record(), tighter) == ["intercept error 0.1 > 0.05"]
    # A metric the table leaves unbounded is judged once a bound is given.
    assert failures(record(distance=0.05), Thresholds(bounds={"distance": 0.01})) == [
        "distance to the reference 0.05 > 0.01"
    ]


def test_an_unknown_metric_name_is_refused():
    with pytest.raises(ValueError, match=r"^x-bs1-cpu: no metric 'excess_mse' to bound; its problem has "):
        failures(record(), Thresholds(bounds={"excess_mse": 0.5}))
    with pytest.raises(ValueError, match="no metric 'slope_err' to bound"):
        assert_converged(record(), Thresholds(bounds={"excess_loss": 0.5, "slope_err": 0.1}))


def test_thresholds_are_frozen():
    given = {"excess_loss": 0.5}
    thresholds = Thresholds(bounds=given)
    given["excess_loss"] = 100.0
    assert thresholds.bounds == {"excess_loss": 0.5}
    with pytest.raises(TypeError):
        thresholds.bounds["excess_loss"] = 1.0


def test_epochs_to_converge():
    assert epochs_to_converge(record(epoch_loss=[200.0, 10.0, 0.59, 0.2]), BOUNDS) == 2
    assert epochs_to_converge(record(epoch_loss=[0.1, 10.0, 5.0]), BOUNDS) is None  # epoch 0 is the start
    assert epochs_to_converge(record(epoch_loss=[200.0, None]), BOUNDS) is None
    # By default the excess bound is the record's own (the line's 0.3, so within 0.4 here).
    assert epochs_to_converge(record(epoch_loss=[200.0, 0.5, 0.39])) == 2
    assert epochs_to_converge(record(epoch_loss=[200.0, 0.5, 0.39]), BOUNDS) == 1


def test_epochs_to_converge_needs_an_excess_bound():
    table = [{**m, "bound": None} if m["name"] == "excess_loss" else m for m in TABLE]
    with pytest.raises(ValueError, match="its problem bounds no excess_loss"):
        epochs_to_converge(record(metrics=table))


def test_falls_faster():
    fast = record(id="sgd", epoch_loss=[200.0, 0.3, 0.2])
    slow = record(id="adam", epoch_loss=[200.0, 100.0, 0.3])
    assert_falls_faster(fast, slow, BOUNDS)
    with pytest.raises(ConvergenceError) as error:
        assert_falls_faster(slow, fast, BOUNDS)
    assert str(error.value) == (
        "adam does not fall faster than sgd: after epoch 1 its loss is 100.0 against 0.3; "
        "it needs 2 epochs to converge against 1"
    )
    tie = record(id="tie", epoch_loss=[200.0, 0.3, 0.2])
    with pytest.raises(ConvergenceError, match="needs 1 epochs to converge against 1"):
        assert_falls_faster(tie, fast, BOUNDS)


TOLERANCES = Tolerances(
    growth={"excess_loss": 0.05, "slope_error": 0.02, "intercept_error": 0.03}, time_ratio=1.5
)


def run_record(**fields):
    return record(
        **{
            "status": "converged",
            "final_loss": 0.2,
            "slope": -5.01,
            "intercept": 1.02,
            "median": 1.0,
            **fields,
        }
    )


def test_an_unchanged_run_has_no_regression():
    assert regressions(run_record(), run_record(), TOLERANCES) == []


def test_each_regression_is_named():
    worse = run_record(status="not_converged", final_loss=0.3, slope=-5.05, intercept=1.06, median=2.0)
    assert regressions(run_record(), worse, TOLERANCES) == [
        "status converged -> not_converged",
        "excess MSE grew by 0.1 (tolerance 0.05)",
        "slope error grew by 0.04 (tolerance 0.02)",
        "intercept error grew by 0.04 (tolerance 0.03)",
        "median time x2 (tolerance x1.5)",
    ]


def test_moving_towards_the_true_line_or_getting_better_is_no_regression():
    better = run_record(final_loss=0.1, slope=-4.995, intercept=0.99, median=0.5)
    assert regressions(run_record(), better, TOLERANCES) == []
    recovered = run_record()
    gone = run_record(status="diverged", final_loss=None, slope=None, intercept=None)
    assert regressions(gone, recovered, TOLERANCES) == []


def test_divergence_is_named_once():
    gone = run_record(status="diverged", final_loss=None, slope=None, intercept=None)
    assert regressions(run_record(), gone, TOLERANCES) == ["status converged -> diverged"]


def test_only_gated_metrics_count_and_missing_times_are_not_compared():
    before = run_record(median=None)
    # The fit moved (slope and distance, which the table gives no tolerance), not its errors.
    after = {**before, "slope": -4.99, "distance": 0.5, "median": 100.0}
    assert regressions(before, after, TOLERANCES) == []
    # A metric named in growth is gated even where the table gives it no tolerance.
    gated = Tolerances(growth={"distance": 0.02}, time_ratio=1.5)
    assert regressions(before, after, gated) == ["distance to the reference grew by 0.45 (tolerance 0.02)"]


def test_tolerances_default_to_the_baselines_metric_table():
    # The line's: excess 0.05, slope error 0.15, intercept error 0.25.
    within = run_record(final_loss=0.25, slope=-5.15, intercept=1.26)
    assert regressions(run_record(), within) == []
    beyond = run_record(final_loss=0.26, slope=-5.17, intercept=1.28)
    assert regressions(run_record(), beyond) == [
        "excess MSE grew by 0.06 (tolerance 0.05)",
        "slope error grew by 0.16 (tolerance 0.15)",
        "intercept error grew by 0.26 (tolerance 0.25)",
    ]
    # The baseline's table decides, not the candidate's.
    table = [{**m, "tolerance": 1.0} if m.get("tolerance") is not None else m for m in TABLE]
    assert regressions(run_record(metrics=table), beyond) == []
    assert regressions(run_record(), {**beyond, "metrics": table}) == regressions(run_record(), beyond)
    # A growth replaces the table's tolerance for that metric only.
    assert regressions(run_record(), beyond, Tolerances(growth={"excess_loss": 0.1})) == [
        "slope error grew by 0.16 (tolerance 0.15)",
        "intercept error grew by 0.26 (tolerance 0.25)",
    ]


def test_a_star_sets_every_tolerance_and_zero_allows_no_growth():
    none = Tolerances(growth={"*": 0})
    assert regressions(run_record(), run_record(), none) == []
    nudged = run_record(final_loss=0.2 + 1e-6, slope=-5.01 - 1e-6, intercept=1.02 + 1e-6, distance=9.0)
    assert regressions(run_record(), nudged, none) == [
        "excess MSE grew by 1e-06 (tolerance 0)",
        "slope error grew by 1e-06 (tolerance 0)",
        "intercept error grew by 1e-06 (tolerance 0)",
    ]  # distance has no tolerance in the table, so "*" leaves it ungated
    # A metric's own entry wins over "*".
    assert regressions(run_record(), nudged, Tolerances(growth={"*": 0, "slope_error": 0.1})) == [
        "excess MSE grew by 1e-06 (tolerance 0)",
        "intercept error grew by 1e-06 (tolerance 0)",
    ]


def test_assert_not_regressed():
    baseline = {"x-bs1-cpu": run_record()}
    assert_not_regressed(run_record(median=100.0), baseline, TOLERANCES)  # timings are never compared here
    assert_not_regressed(run_record(id="new-bs1-cpu", final_loss=9.0), baseline, TOLERANCES)
    assert_not_regressed(run_record(), None, TOLERANCES)
    with pytest.raises(
        ConvergenceError, match=r"^x-bs1-cpu regressed against the baseline: excess MSE grew by 0.1 "
    ):
        assert_not_regressed(run_record(final_loss=0.3), baseline, TOLERANCES)


def seeds_record(excess, slopes=None, statuses=None, **fields):
    """A record of len(excess) seeds, each with reference loss 0.1 and intercept 1."""
    count = len(excess)
    slopes = slopes or [-5.0] * count
    return record(
        **{"seed": 0, **fields},
        seeds=count,
        seed_final_loss=[None if e is None else 0.1 + e for e in excess],
        seed_reference_loss=[0.1] * count,
        seed_excess_loss=list(excess),
        seed_distance=[0.0] * count,
        seed_slope=slopes,
        seed_intercept=[1.0] * count,
        seed_slope_error=[abs(s + 5.0) for s in slopes],
        seed_intercept_error=[0.0] * count,
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
    every_seed = Thresholds(bounds=BOUNDS.bounds, quantile=1.0)
    assert failures(one_over, every_seed) == [
        "excess MSE 2 > 0.5 at the 1 quantile of 32 seeds (1 of 32 seeds over)"
    ]
    # Without bounds of its own, the record's table bounds every seed (the line's excess 0.3).
    assert failures(seeds_record([0.2] * 30 + [0.4, 0.4])) == [
        "excess MSE 0.4 > 0.3 at the 0.95 quantile of 32 seeds (2 of 32 seeds over)"
    ]


def test_the_single_record_fields_do_not_decide_a_many_seed_verdict():
    # The first seed's own fields fail, but 31 of 32 seeds are inside every bound.
    many = seeds_record([2.0] + [0.2] * 31, final_loss=2.1)
    assert failures({**many, "seeds": 1}, BOUNDS) == ["excess MSE 2 > 0.5 (final 2.1, reference 0.1)"]
    assert failures(many, BOUNDS) == []


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
        Thresholds(bounds=BOUNDS.bounds, quantile=0.0)
    with pytest.raises(ValueError, match="quantile must be in"):
        Thresholds(quantile=1.5)


def test_a_many_seed_record_regresses_when_its_quantile_grows():
    def make(count, q95, **fields):
        return seeds_record([0.1] * count, excess_loss_q95=q95, status="converged", **fields)

    assert regressions(make(32, 0.1), make(32, 0.2)) == [
        "0.95 quantile of the excess MSE over 32 seeds grew by 0.1 (tolerance 0.05)"
    ]
    assert regressions(make(32, 0.1), make(32, 0.12)) == []
    # A different number of seeds is a different population: only the first seed compares.
    assert regressions(make(32, 0.1), make(16, 0.2)) == []
    # Every bounded metric's quantile is gated, at the baseline's tolerance (slope error: 0.15).
    assert regressions(make(32, 0.1, slope_error_q95=0.1), make(32, 0.1, slope_error_q95=0.3)) == [
        "0.95 quantile of the slope error over 32 seeds grew by 0.2 (tolerance 0.15)"
    ]


def test_the_records_here_carry_the_lines_calibrated_table():
    judged = {m["name"]: (m["label"], m["bound"], m["tolerance"]) for m in TABLE if m["bound"] is not None}
    assert judged == {
        "excess_loss": ("excess MSE", 0.3, 0.05),
        "slope_error": ("slope error", 0.2, 0.15),
        "intercept_error": ("intercept error", 0.3, 0.25),
    }
    assert TABLE[2] == Metric("excess_loss", "excess MSE", bound=0.3, tolerance=0.05).as_dict()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"growth": {"excess_loss": -0.1}},
            r"^Tolerances.growth\['excess_loss'\] must be a non-negative number",
        ),
        ({"growth": {"*": float("nan")}}, r"^Tolerances.growth\['\*'\] must be a non-negative number"),
        ({"growth": {"slope_error": "0.1"}}, r"^Tolerances.growth\['slope_error'\] must be a non-negative"),
        ({"time_ratio": 0}, r"^Tolerances.time_ratio must be a positive number or None, got 0$"),
    ],
)
def test_tolerances_refuse_what_no_gate_can_use(arguments, message):
    with pytest.raises(ValueError, match=message):
        Tolerances(**arguments)
