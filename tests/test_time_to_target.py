"""Records say when, not only whether: the step (and time) at which each seed's loss got within its bound."""

import json
import math

import pytest

from optbench import LINE, OPTIMIZERS, Thresholds, epochs_to_converge, run
from optbench.record import CURVES, METADATA, TARGET, fields, schema
from optbench.record.checks import first_epoch_within, time_to_target
from optbench.record.spread import median_step
from optbench.results import load

TABLE = [metric.as_dict() for metric in LINE.table]
"""The line's metric table as a record carries it: excess_loss bounded at 0.3."""
NAMES = [field.name for field in TARGET]


def record(epoch_loss, steps=50, seconds=2.0, **fields):
    """A one-seed record of the line with reference loss 0.1, so a loss within 0.4 is on target."""
    return {
        "id": "x-bs10-cpu",
        "metrics": TABLE,
        "reference_loss": 0.1,
        "epoch_loss": epoch_loss,
        "steps": steps,
        "seconds": seconds,
        **fields,
    }


def test_the_first_epoch_on_target_gives_its_step_and_time():
    # bs 10 of 100 points: 10 steps per epoch; 5 epochs, 50 steps, in 2 seconds.
    curve = [200.0, 10.0, 0.6, 0.39, 0.2, 0.15]
    assert time_to_target(record(curve), 10) == (30, pytest.approx(2.0 * 30 / 50))
    assert epochs_to_converge(record(curve)) == 3  # one function finds the epoch for both


def test_on_target_before_training_is_step_0():
    assert time_to_target(record([0.2, 10.0, 0.3]), 10) == (0, 0.0)
    assert time_to_target(record([0.2], steps=0, seconds=0.0), 10) == (0, 0.0)  # no epochs at all
    assert epochs_to_converge(record([0.2, 10.0, 0.3])) == 2  # it starts after training's start


def test_never_on_target_is_none():
    assert time_to_target(record([200.0, 10.0, 0.6]), 10) == (None, None)
    assert time_to_target(record([200.0, None, math.nan]), 10) == (None, None)  # diverged
    assert time_to_target(record([200.0, 0.2], reference_loss=None), 10) == (None, None)


def test_no_excess_bound_is_none():
    table = [{**m, "bound": None} if m["name"] == "excess_loss" else m for m in TABLE]
    assert time_to_target(record([200.0, 0.2], metrics=table), 10) == (None, None)
    with pytest.raises(ValueError, match="bounds no excess_loss"):
        epochs_to_converge(record([200.0, 0.2], metrics=table))


def test_the_bound_is_inclusive_and_thresholds_replace_it():
    assert first_epoch_within([9.0, 0.6, 0.35], 0.1, 0.5, start=0) == 1  # 0.6 - 0.1 == 0.5
    assert first_epoch_within([9.0, 0.6, 0.35], 0.1, 0.25, start=0) == 2
    loose = Thresholds(bounds={"excess_loss": 1.0})
    assert time_to_target(record([200.0, 1.05, 0.2]), 10, loose) == (10, pytest.approx(0.4))


def test_the_step_is_capped_at_the_steps_taken_and_one_step_per_epoch_without_data():
    # The last epoch ran 5 of its 10 steps before the run stopped: the target is at the end.
    assert time_to_target(record([200.0, 10.0, 0.2], steps=15, seconds=3.0), 10) == (15, 3.0)
    # A problem without data trains one sample: one step per epoch, so the step is the epoch.
    assert time_to_target(record([200.0, 10.0, 0.6, 0.2], steps=3, seconds=3.0), 1) == (3, 3.0)


def test_the_median_step_counts_a_seed_never_on_target_as_infinitely_late():
    assert median_step([40, None, 20, 30]) == 30  # the 2nd of 20, 30, 40, inf
    assert median_step([40, None, None, 30]) == 40  # half got there: the median is the later
    assert median_step([40, None, None, None]) is None  # fewer than half
    assert median_step([None]) is None
    assert median_step([0]) == 0


def test_a_real_run_of_four_seeds_says_when_each_got_there():
    scenario = OPTIMIZERS["adam"].scenario(10, seeds=4)
    result = run(scenario)
    assert result["seed_runs"] == "vectorised"
    steps, per_epoch = result["steps"], math.ceil(100 / 10)
    seed_steps, seed_seconds = result["seed_target_step"], result["seed_target_seconds"]
    assert len(seed_steps) == len(seed_seconds) == 4
    assert seed_steps[0] == result["target_step"] is not None
    assert seed_seconds[0] == result["target_seconds"]
    assert all(isinstance(step, int) and 0 <= step <= steps for step in seed_steps), seed_steps
    assert 0 <= result["target_seconds"] <= result["seconds"]
    # A vectorised run's seeds share its seconds, spread evenly over its steps.
    for step, seconds in zip(seed_steps, seed_seconds, strict=True):
        assert seconds == pytest.approx(result["seconds"] * step / steps)
    assert result["target_step_q50"] == median_step(seed_steps)
    # The first seed's step is its epochs_to_converge in steps (step 0 is the loss before training).
    epochs = epochs_to_converge(result)
    assert epochs is not None and result["target_step"] in (0, min(epochs * per_epoch, steps))
    # Each seed's step is the one its own one-seed run finds.
    for index, step in enumerate(seed_steps):
        alone = run(OPTIMIZERS["adam"].scenario(10, seed=index))
        assert alone["target_step"] == step, index
        assert alone["seed_target_step"] == [step] and alone["target_step_q50"] == step
        assert alone["target_seconds"] <= alone["seconds"]
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_a_full_batch_run_takes_one_step_per_epoch():
    result = run(OPTIMIZERS["sgd"].scenario(100))
    epochs = epochs_to_converge(result)
    assert result["steps"] == result["epochs"] and epochs is not None
    assert result["target_step"] == epochs


def test_the_fields_are_declared_once_with_a_description_and_are_optional():
    assert NAMES == [
        "target_step", "target_seconds", "seed_target_step", "seed_target_seconds", "target_step_q50",
    ]  # fmt: skip
    assert all(field.doc and field.optional for field in TARGET)
    assert set(NAMES) <= set(fields(LINE.table))


def test_the_schema_takes_a_record_with_the_fields_and_one_saved_before_them():
    result = run(OPTIMIZERS["adam"].scenario(10, seeds=2))
    schema.check_record(result)
    old = {key: value for key, value in result.items() if key not in NAMES}  # schema 3 as first saved
    schema.check_record(old)
    schema.check_record({**old, **dict.fromkeys(NAMES)})  # never on target
    schema.check_record({**result, "seed_target_step": [None, None], "seed_target_seconds": [None, 1.5]})
    # A baseline keeps the steps, not the seconds (nor the set-up, timings and curves).
    dropped = {field.name for field in (*METADATA, *TARGET, *CURVES) if not field.baseline}
    assert dropped & set(NAMES) == {"target_seconds", "seed_target_seconds"}
    schema.check_record({k: v for k, v in result.items() if k not in dropped}, baseline=True)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("target_step", -1, "target_step: input should be greater than or equal to 0"),
        ("target_step", "30", "target_step: input should be a valid integer"),
        ("target_step", 30.0, "target_step: input should be a valid integer"),
        ("target_seconds", -0.5, "target_seconds: input should be greater than or equal to 0"),
        ("seed_target_step", [30, -1], "seed_target_step.1: input should be greater than or equal to 0"),
        ("seed_target_step", [30], "seed_target_step: holds 1 value(s) for 2 seed(s)"),
        ("seed_target_seconds", "1.5", "seed_target_seconds: input should be a valid list"),
        ("target_step_q50", True, "target_step_q50: input should be a valid integer"),
    ],
)
def test_the_schema_refuses_a_wrong_value(name, value, message):
    result = run(OPTIMIZERS["adam"].scenario(10, seeds=2, epochs=2))
    with pytest.raises(schema.SchemaError) as caught:
        schema.check_record({**result, name: value})
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_saved_run_with_the_fields_reads(tmp_path):
    result = run(OPTIMIZERS["adam"].scenario(10, seeds=2, epochs=3))
    path = tmp_path / "run.json"
    bench = {"name": "test_x", "fullname": "t::test_x", "stats": {"median": 1.0}, "extra_info": result}
    path.write_text(json.dumps({"benchmarks": [bench], "optbench_schema": 3}))
    loaded = load([path])
    assert loaded.warnings == [] and list(loaded.frame.id) == [result["id"]]
