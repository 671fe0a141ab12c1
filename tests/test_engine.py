import json
import math
from functools import partial

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from optbench import (
    LINE,
    OPTIMIZERS,
    LineDataset,
    Scenario,
    StaleOptimizerError,
    least_squares,
    linear,
    prepare,
    run,
    train,
)
from optbench.engine import MAX_CURVE_POINTS, _downsample, _record, _train_one
from optbench.record import fields


def sgd(batch_size=10, **fields) -> Scenario:
    return OPTIMIZERS["sgd"].scenario(batch_size, **fields)


TIMED = ("seconds", "target_seconds", "seed_target_seconds")
"""The wall-clock fields: the only ones two runs of one scenario may differ in."""


def without_time(record):
    return {key: value for key, value in record.items() if key not in TIMED}


def test_same_scenario_same_record():
    first, second = run(sgd(seed=3)), run(sgd(seed=3))
    assert without_time(first) == without_time(second)
    assert without_time(run(sgd(seed=4))) != without_time(first)


def test_record_is_flat_json():
    record = run(sgd())
    text = json.dumps(record, allow_nan=False)
    assert json.loads(text) == record
    for key, value in record.items():
        assert isinstance(value, (str, int, float, bool, list, type(None))), key
        if isinstance(value, list) and key != "metrics":
            kinds = (int, type(None)) if key == "seed_target_step" else (float, str, type(None))
            assert all(isinstance(item, kinds) and not isinstance(item, bool) for item in value), key
    # The one list of objects: the problem's metric table, each entry a flat JSON object.
    assert record["metrics"] == [metric.as_dict() for metric in LINE.table]
    for entry in record["metrics"]:
        assert list(entry) == ["name", "label", "bound", "tolerance"], entry
        assert isinstance(entry["name"], str) and isinstance(entry["label"], str), entry
        assert all(isinstance(entry[k], (int, float, type(None))) for k in ("bound", "tolerance")), entry
    # Every declared field, and nothing else, in the declared order.
    assert list(record) == list(fields(LINE.table))


def test_record_fields():
    scenario = sgd(batch_size=10, seed=2)
    record = run(scenario)
    data = LineDataset(seed=2)
    optimum = least_squares(data.x, data.y)
    assert record["id"] == "sgd-bs10-cpu"
    assert (record["optimizer"], record["batch_size"], record["device"], record["seed"]) == (
        "sgd",
        10,
        "cpu",
        2,
    )
    assert (record["problem"], record["expected_failure"]) == ("line", "")
    assert record["steps"] == 20 * 10
    assert len(record["epoch_loss"]) == 21
    assert len(record["step_loss"]) == 200 and record["step_loss_stride"] == 1
    assert record["epoch_loss"][-1] == record["final_loss"]
    assert record["reference_loss"] == optimum.mse
    assert record["excess_loss"] == record["final_loss"] - record["reference_loss"]
    # The distance is to the reference solution (the least-squares line), not to the true line.
    apart = (record["slope"] - optimum.slope, record["intercept"] - optimum.intercept)
    assert record["distance"] == pytest.approx(math.hypot(*apart), abs=1e-5)
    # The errors are from the true line, y = -5x + 1.
    assert record["slope_error"] == abs(record["slope"] - -5.0)
    assert record["intercept_error"] == abs(record["intercept"] - 1.0)
    assert record["status"] == "converged"
    assert json.loads(record["hyperparams"]) == {"lr": 0.01}
    assert record["seconds"] > 0


def test_final_numbers_are_the_trained_models():
    scenario = sgd(seed=5)
    prepared = prepare(scenario)
    record = train(prepared)
    model = prepared.model
    assert record["slope"] == pytest.approx(model.weight.item(), abs=1e-6)
    assert record["intercept"] == pytest.approx(model.bias.item(), abs=1e-6)
    mse = torch.nn.functional.mse_loss(model(prepared.x), prepared.y).item()
    assert record["final_loss"] == pytest.approx(mse, rel=1e-6)
    optimum = least_squares(prepared.x, prepared.y)
    params = torch.tensor([model.weight.item(), model.bias.item()], dtype=torch.float64)
    reference = torch.tensor([optimum.slope, optimum.intercept], dtype=torch.float64)
    assert record["distance"] == float((params - reference).norm())


def test_initial_loss_is_the_untrained_models():
    scenario = sgd(model=partial(linear, weight=-10.0, bias=-20.0), epochs=1)
    record = run(scenario)
    data = LineDataset(seed=0)
    assert record["epoch_loss"][0] == pytest.approx(
        float((-10 * data.x - 20 - data.y).square().mean()), rel=1e-6
    )


def test_long_curves_are_averaged_down():
    record = run(sgd(batch_size=1))
    assert record["steps"] == 2000
    assert record["step_loss_stride"] == 10
    assert len(record["step_loss"]) == MAX_CURVE_POINTS


def test_downsample_means_each_window_and_the_ragged_tail():
    curve, stride = _downsample(torch.arange(7, dtype=torch.float32), max_points=3)
    assert stride == 3
    assert curve.tolist() == [1.0, 4.0, 6.0]
    curve, stride = _downsample(torch.arange(4, dtype=torch.float32), max_points=10)
    assert (curve.tolist(), stride) == ([0.0, 1.0, 2.0, 3.0], 1)


def test_lbfgs_runs_through_a_closure():
    record = run(OPTIMIZERS["lbfgs"].scenario(100))
    assert record["status"] == "converged"
    assert record["final_loss"] == pytest.approx(record["reference_loss"], rel=1e-4)


def test_divergence_is_recorded_not_raised():
    scenario = sgd(batch_size=1, optimizer=partial(torch.optim.SGD, lr=1.0))
    record = run(scenario)
    assert record["status"] == "diverged"
    assert record["final_loss"] is None and record["excess_loss"] is None
    assert 0 < record["steps"] < 2000
    assert record["steps"] % 100 == 0  # it stops at the end of the first non-finite epoch
    assert len(record["epoch_loss"]) == record["steps"] // 100 + 1
    json.dumps(record, allow_nan=False)


def test_shuffle_is_seeded_and_changes_the_order():
    plain = run(sgd(batch_size=10))
    shuffled = run(sgd(batch_size=10, shuffle=True))
    again = run(sgd(batch_size=10, shuffle=True))
    assert without_time(shuffled) == without_time(again)
    assert shuffled["step_loss"] != plain["step_loss"]
    assert shuffled["status"] == "converged"


def test_batch_size_larger_than_the_data_is_full_batch():
    record = run(sgd(batch_size=1000, optimizer=partial(torch.optim.SGD, lr=0.03), epochs=100))
    assert record["steps"] == 100


def test_ragged_last_batch():
    record = run(sgd(batch_size=30, epochs=2))
    assert record["steps"] == 2 * 4


class ListDataset(Dataset):
    def __init__(self, seed):
        line = LineDataset(seed=seed)
        self.pairs = [(float(x), float(y)) for x, y in zip(line.x.view(-1), line.y.view(-1), strict=True)]

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        return self.pairs[index]


def test_a_users_dataset_trains_like_the_built_in_one():
    own = run(sgd(dataset=ListDataset))
    built_in = run(sgd())
    assert own["final_loss"] == built_in["final_loss"]
    assert own["epoch_loss"] == built_in["epoch_loss"]
    assert own["reference_loss"] == built_in["reference_loss"]
    assert (own["slope"], own["intercept"], own["distance"]) == (
        built_in["slope"],
        built_in["intercept"],
        built_in["distance"],
    )
    # Without a known true line, the least-squares fit is the target.
    data = LineDataset(seed=0)
    optimum = least_squares(data.x, data.y)
    assert own["slope_error"] == abs(own["slope"] - optimum.slope)
    assert own["intercept_error"] == abs(own["intercept"] - optimum.intercept)
    assert built_in["slope_error"] == abs(built_in["slope"] - -5.0) != own["slope_error"]


class TrueLine(ListDataset):
    """The tutorial's points, saying which line they were drawn around in ``truth``."""

    def __init__(self, seed, truth):
        super().__init__(seed)
        self.truth = truth


class Named(ListDataset):
    """Attributes called slope and intercept are not a truth: only ``truth`` is."""

    slope, intercept = 3.0, 4.0


def test_a_users_dataset_is_judged_against_its_truth():
    line = LineDataset(seed=0)
    optimum = least_squares(line.x, line.y)
    told = run(sgd(dataset=partial(TrueLine, truth=(2.0, -1.0))))
    assert told["slope_error"] == abs(told["slope"] - 2.0)
    assert told["intercept_error"] == abs(told["intercept"] + 1.0)
    # The distance is to the reference solution, whatever the truth.
    assert told["distance"] == run(sgd())["distance"]
    named = run(sgd(dataset=Named))
    assert named["slope_error"] == abs(named["slope"] - optimum.slope)
    assert named["intercept_error"] == abs(named["intercept"] - optimum.intercept)


def test_a_fixed_dataset_instance_is_used_as_is():
    data = LineDataset(seed=9, slope=2.0, intercept=-1.0)
    assert data.truth == (2.0, -1.0)
    record = run(sgd(dataset=data, seed=0))
    assert record["slope_error"] == abs(record["slope"] - 2.0)
    assert record["intercept_error"] == abs(record["intercept"] - -1.0)
    assert record["reference_loss"] == least_squares(data.x, data.y).mse


def test_each_run_gets_a_fresh_model_and_optimizer():
    scenario = sgd()
    first, second = prepare(scenario), prepare(scenario)
    assert first.model is not second.model
    assert first.optimizer is not second.optimizer
    assert torch.equal(first.model.weight, second.model.weight)


def test_model_init_does_not_touch_the_global_random_state():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    prepare(sgd())
    assert torch.equal(torch.get_rng_state(), before)


def test_the_tutorials_bug_is_refused():
    """The listing's second loop stepped an optimizer built for the first model."""
    first_model = nn.Linear(1, 1)
    tutorial_optimizer = torch.optim.Adam(first_model.parameters(), lr=0.01)
    scenario = sgd(optimizer=lambda params: tutorial_optimizer)
    with pytest.raises(StaleOptimizerError) as error:
        prepare(scenario)
    message = str(error.value)
    assert "sgd-bs10-cpu" in message and "the tutorial's bug" in message
    assert "holds 2 parameter(s) of another model and misses 2 of the 2" in message


def test_an_optimizer_missing_a_parameter_is_refused():
    scenario = sgd(optimizer=lambda params: torch.optim.SGD(list(params)[:1], lr=0.01))
    with pytest.raises(
        StaleOptimizerError, match="holds 0 parameter\\(s\\) of another model and misses 1 of the 2"
    ):
        prepare(scenario)


def test_an_optimizer_holding_a_parameter_twice_is_refused():
    class Twice:
        def __init__(self, params):
            params = list(params)
            self.param_groups = [{"params": params}, {"params": params[:1]}]

    with pytest.raises(StaleOptimizerError, match="holds a parameter twice"):
        prepare(sgd(optimizer=Twice))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"epochs": -1}, "epochs must be a positive integer"),
        ({"name": "Adam W"}, "must be lower-case"),
        ({"device": "gpu0"}, "'gpu0' is not a torch device; use cpu, cuda, cuda:N or mps"),
        ({"device": "meta"}, "optbench runs on cpu, cuda and mps, not meta"),
    ],
)
def test_bad_scenarios_fail_on_construction(fields, message):
    with pytest.raises((ValueError, RuntimeError), match=message):
        sgd(**fields)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("seeds", [1, 32])
def test_cuda_loop_does_not_synchronise_per_step(seeds):
    import warnings

    prepared = prepare(sgd(batch_size=1, device="cuda", seeds=seeds))
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            record = train(prepared)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert record["status"] == "converged"
    # One check per epoch and the final copies, never one per step.
    assert len(caught) <= record["epochs"] + 10 < record["steps"]


@pytest.mark.parametrize("name", ["sgd", "adam", "adadelta", "muon"])
def test_a_full_batch_takes_its_epoch_loss_from_the_step_loss_exactly(name):
    scenario = OPTIMIZERS[name].scenario(100, epochs=30)
    reused, computed = (
        _record(_train_one(prepare(scenario), reuse_step_loss=flag)) for flag in (True, False)
    )
    assert without_time(reused) == without_time(computed)


def test_a_full_batch_that_diverges_stops_where_the_batched_loop_stops():
    scenario = OPTIMIZERS["sgd"].scenario(100, epochs=200, optimizer=partial(torch.optim.SGD, lr=1.0))
    reused, computed = (
        _record(_train_one(prepare(scenario), reuse_step_loss=flag)) for flag in (True, False)
    )
    assert reused["status"] == "diverged" and reused["steps"] < 200
    assert without_time(reused) == without_time(computed)


def test_only_a_full_batch_can_reuse_its_step_loss():
    with pytest.raises(ValueError, match="only a full batch"):
        _train_one(prepare(sgd(batch_size=10)), reuse_step_loss=True)
