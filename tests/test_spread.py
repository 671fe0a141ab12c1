import json
import math
from functools import partial

import pytest
import torch

from optbench import LINE, OPTIMIZERS, run
from optbench.record import QUANTILES, quantile_field, seed_field
from optbench.record.schema import check_record
from optbench.record.spread import band, metric_quantiles, over_seeds, quantile, seed_values


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
    assert quantile_field("excess_loss", 0.95) == "excess_loss_q95"
    assert quantile_field("epoch_loss", 0.1) == "epoch_loss_q10"
    assert seed_field("excess_loss") == "seed_excess_loss"


def test_band_counts_a_missing_point_as_infinite():
    curves = [[4.0, 2.0, 1.0], [6.0, 3.0], [5.0, None, None]]
    assert band(curves, 0.5) == [5.0, 3.0, None]
    assert band(curves, 0.1) == [4.0, 2.0, 1.0]


def test_over_seeds():
    records = [
        {"final_loss": 1.1, "reference_loss": 0.1, "excess_loss": 1.0, "distance": 0.5, "slope": -5.5,
         "intercept": 1.0, "slope_error": 0.5, "intercept_error": 0.0, "status": "not_converged",
         "epoch_loss": [9.0, 1.1]},
        {"final_loss": 0.2, "reference_loss": 0.1, "excess_loss": 0.1, "distance": 0.2, "slope": -5.1,
         "intercept": 0.8, "slope_error": 0.1, "intercept_error": 0.2, "status": "converged",
         "epoch_loss": [8.0, 0.2]},
    ]  # fmt: skip
    fields = over_seeds(records, LINE.table)
    assert fields["seeds"] == 2
    assert fields["pass_rate"] == 0.5
    assert fields["seed_final_loss"] == [1.1, 0.2]
    for metric in LINE.table:  # a per-seed list of every metric of the table, in seed order
        assert fields[seed_field(metric.name)] == [r[metric.name] for r in records]
    assert fields["seed_status"] == ["not_converged", "converged"]
    assert fields["excess_loss_q50"] == pytest.approx(0.1)
    assert fields["excess_loss_q95"] == pytest.approx(1.0)
    assert fields["slope_error_q95"] == pytest.approx(0.5)
    assert fields["intercept_error_q10"] == 0.0
    assert fields["epoch_loss_q50"] == [8.0, 0.2]
    assert fields["epoch_loss_q90"] == [9.0, 1.1]
    # Quantiles exist for the bounded metrics only.
    quantiles = {key for key in fields if key.rsplit("_q", 1)[-1].isdigit() and not key.startswith("epoch")}
    assert quantiles == {
        quantile_field(name, q)
        for name in ("excess_loss", "slope_error", "intercept_error")
        for q in QUANTILES
    }


def test_a_missing_seed_value_counts_as_infinite():
    record = {
        "seed_excess_loss": [0.1, None, 0.3],
        "seed_slope_error": [0.1, 0.2, float("nan")],
        "seed_intercept_error": [0.0, 0.1, 0.2],
    }
    values = seed_values(record, LINE.table)
    assert values == {
        "excess_loss": [0.1, math.inf, 0.3],
        "slope_error": [0.1, 0.2, math.inf],
        "intercept_error": [0.0, 0.1, 0.2],
    }
    fields = metric_quantiles(record, LINE.table)
    assert (fields["excess_loss_q50"], fields["excess_loss_q95"]) == (0.3, None)  # not finite: None
    assert (fields["slope_error_q10"], fields["slope_error_q95"]) == (0.1, None)
    assert fields["intercept_error_q95"] == 0.2


def test_a_band_spans_the_seeds_that_trained_on_after_the_first_diverged():
    """Seeds diverge at different epochs: the band is as long as the longest seed's curve, and reads back."""

    scenario = OPTIMIZERS["sgd"].scenario(
        100, seeds=8, epochs=100, optimizer=partial(torch.optim.SGD, lr=0.3, maximize=True)
    )
    record = run(scenario)
    lengths = {len(record[f"epoch_loss_q{q}"]) for q in (10, 50, 90)}
    assert len(lengths) == 1
    (band,) = lengths
    assert len(record["epoch_loss"]) < band <= scenario.epochs + 1  # the first seed stopped first
    check_record(json.loads(json.dumps(record, allow_nan=False)))
    with pytest.raises(Exception, match=r"epoch_loss_q10: holds \d+ point\(s\) for the \d+ of epoch_loss"):
        check_record({**record, "epoch_loss_q10": record["epoch_loss_q10"][: len(record["epoch_loss"]) - 1]})
