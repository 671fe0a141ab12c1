import math

import pytest

from optbench.spread import band, name, over_seeds, quantile


def test_nearest_rank_quantiles_are_actual_values():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert [quantile(values, q) for q in (0.1, 0.2, 0.5, 0.9, 1.0)] == [1.0, 1.0, 3.0, 5.0, 5.0]
    assert quantile([7.0], 0.95) == 7.0


def test_nan_and_inf_rank_last():
    assert quantile([1.0, math.nan, 2.0], 0.5) == 2.0
    assert quantile([1.0, math.inf, 2.0], 1.0) == math.inf


@pytest.mark.parametrize(("values", "q"), [([], 0.5), ([1.0], 0.0), ([1.0], 1.5)])
def test_bad_quantile_arguments_are_refused(values, q):
    with pytest.raises(ValueError):
        quantile(values, q)


def test_field_names():
    assert name("excess_mse", 0.95) == "excess_mse_q95"
    assert name("epoch_mse", 0.1) == "epoch_mse_q10"


def test_band_counts_a_missing_point_as_infinite():
    curves = [[4.0, 2.0, 1.0], [6.0, 3.0], [5.0, None, None]]
    assert band(curves, 0.5) == [5.0, 3.0, None]
    assert band(curves, 0.1) == [4.0, 2.0, 1.0]


def test_over_seeds():
    records = [
        {"final_mse": 1.1, "optimum_mse": 0.1, "slope": -5.5, "intercept": 1.0, "status": "not_converged",
         "target_slope": -5.0, "target_intercept": 1.0, "epoch_mse": [9.0, 1.1]},
        {"final_mse": 0.2, "optimum_mse": 0.1, "slope": -5.1, "intercept": 0.8, "status": "converged",
         "target_slope": -5.0, "target_intercept": 1.0, "epoch_mse": [8.0, 0.2]},
    ]  # fmt: skip
    fields = over_seeds(records)
    assert fields["seeds"] == 2
    assert fields["pass_rate"] == 0.5
    assert fields["seed_final_mse"] == [1.1, 0.2]
    assert fields["excess_mse_q50"] == pytest.approx(0.1)
    assert fields["excess_mse_q95"] == pytest.approx(1.0)
    assert fields["slope_error_q95"] == pytest.approx(0.5)
    assert fields["intercept_error_q10"] == 0.0
    assert fields["epoch_mse_q50"] == [8.0, 0.2]
    assert fields["epoch_mse_q90"] == [9.0, 1.1]
