"""Seeds trained as replicas of one vectorised run must be the runs the seeds give alone.

The ``elementwise`` flag is what lets the engine pack seeds together, so it is
proven here per flagged optimizer: every replica's final parameters must equal,
bit for bit on CPU float32, those of the same seed trained on its own.
"""

from dataclasses import replace
from functools import partial

import pytest
import torch
from torch import nn

from optbench import LINE, OPTIMIZERS, prepare, run, train
from optbench.engine import Sequential, Vectorised, seed_scenarios
from optbench.record import quantile_field, scalar_fields, seed_field, seed_fields, spread

ELEMENTWISE = [name for name, info in OPTIMIZERS.items() if info.elementwise]
OTHERS = [name for name, info in OPTIMIZERS.items() if not info.elementwise]

METRICS = scalar_fields(LINE.table)
"""Every metric of the line's table: what each seed's record keeps, and ``seed_<metric>`` lists."""


def test_every_metric_of_the_line_is_compared_seed_by_seed():
    # The comparisons below go over the whole table: a metric added to it is compared too.
    assert METRICS == (
        "final_loss", "reference_loss", "excess_loss", "distance",
        "slope", "intercept", "slope_error", "intercept_error",
    )  # fmt: skip
    assert seed_fields(LINE.table) == (*(seed_field(name) for name in METRICS), "seed_status")


def assert_same_as_alone(record, records):
    """``record`` (of several seeds) holds exactly what each seed's own record says, bit for bit."""
    for name in (*METRICS, "status"):
        assert record[seed_field(name)] == [single[name] for single in records], name
    first = records[0]
    for name in (*METRICS, "epoch_loss", "step_loss", "step_loss_stride", "steps"):
        assert record[name] == first[name], name
    # The per-seed lists again, the pass rate, the quantiles and the per-epoch bands over seeds,
    # each as the seeds' own records give them.
    over = spread.over_seeds(records, LINE.table)
    assert {quantile_field("excess_loss", 0.95), quantile_field("epoch_loss", 0.5)} <= set(over)
    for name, value in over.items():
        assert record[name] == value, name


def trained_alone(scenario):
    """Each seed's final parameters, trained on its own."""
    finals = []
    for single in seed_scenarios(scenario):
        ready = prepare(single)
        train(ready)
        finals.append([p.detach().clone() for p in ready.model.parameters()])
    return finals


def trained_as_replicas(scenario):
    ready = prepare(scenario)
    assert isinstance(ready, Vectorised), type(ready).__name__
    record = train(ready)
    finals = [[p.detach()[index].clone() for p in ready.replicas.params] for index in range(scenario.seeds)]
    return record, finals


def test_the_default_matrix_flags_these_optimizers_elementwise():
    # A change to the flags must come with the proof below for the new entry.
    assert ELEMENTWISE == [
        "adadelta", "adagrad", "adam", "adamax", "adamw", "asgd", "nadam", "radam", "rmsprop", "rprop", "sgd",
    ]  # fmt: skip
    assert OTHERS == ["adafactor", "lbfgs", "muon"]


@pytest.mark.parametrize("batch_size", [1, 10, 100])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_replicas_equal_sequential_runs_bitwise(name, batch_size):
    scenario = OPTIMIZERS[name].scenario(batch_size, seed=5, seeds=4, epochs=3, shuffle=True)
    record, replicas = trained_as_replicas(scenario)
    alone = trained_alone(scenario)
    for seed, (mine, theirs) in enumerate(zip(replicas, alone, strict=True), start=5):
        for replica_param, own_param in zip(mine, theirs, strict=True):
            assert torch.equal(replica_param, own_param), f"{name} seed {seed}: {replica_param} {own_param}"
    records = [run(single) for single in seed_scenarios(scenario)]
    assert record["seed_runs"] == "vectorised" and all(single["seed_runs"] == "one" for single in records)
    # Every metric is a number here (distance included: the model is the line's), so none compares as None.
    assert all(isinstance(value, float) for name in METRICS for value in record[seed_field(name)])
    assert_same_as_alone(record, records)


@pytest.mark.parametrize("name", OTHERS)
def test_optimizers_not_flagged_run_their_seeds_one_after_another(name):
    scenario = OPTIMIZERS[name].scenario(100, seeds=3, epochs=2)
    ready = prepare(scenario)
    assert isinstance(ready, Sequential)
    record = train(ready)
    assert record["seed_runs"] == "sequential"
    assert record["seed_final_loss"] == [run(single)["final_loss"] for single in seed_scenarios(scenario)]
    assert_same_as_alone(record, [run(single) for single in seed_scenarios(scenario)])


class GlobalNormSGD(torch.optim.Optimizer):
    """Not elementwise: each step is scaled by the whole tensor's norm, replicas included."""

    def __init__(self, params, lr=0.01):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(p.grad / (p.grad.norm() + 1e-12), alpha=-group["lr"])


def test_the_proof_catches_an_optimizer_wrongly_flagged_elementwise():
    scenario = OPTIMIZERS["sgd"].scenario(10, seeds=4, epochs=2, optimizer=partial(GlobalNormSGD, lr=0.1))
    record, replicas = trained_as_replicas(scenario)
    alone = trained_alone(scenario)
    assert not all(
        torch.equal(mine, theirs)
        for seed_params, own_params in zip(replicas, alone, strict=True)
        for mine, theirs in zip(seed_params, own_params, strict=True)
    )
    # And the record's comparison with the seeds' own records catches it too.
    with pytest.raises(AssertionError):
        assert_same_as_alone(record, [run(single) for single in seed_scenarios(scenario)])


def mlp(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))


@pytest.mark.parametrize("batch_size", [1, 10, 100])
def test_replicas_work_for_any_model_from_the_factory(batch_size):
    """A wider model: bitwise at batch size 1; with more samples per batch the stacked
    matmul sums a batch's gradients in another order than the one-model matmul, so
    replicas agree with their own runs to float32 rounding (1e-5), not bit for bit."""
    scenario = OPTIMIZERS["adam"].scenario(batch_size, seeds=3, epochs=3, shuffle=True, model=mlp)
    _, replicas = trained_as_replicas(scenario)
    for mine, theirs in zip(replicas, trained_alone(scenario), strict=True):
        for replica_param, own_param in zip(mine, theirs, strict=True):
            if batch_size == 1:
                assert torch.equal(replica_param, own_param)
            else:
                torch.testing.assert_close(replica_param, own_param, rtol=1e-5, atol=1e-5)


def with_batch_norm(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))


def test_a_model_with_buffers_falls_back_to_sequential_runs():
    scenario = OPTIMIZERS["adam"].scenario(10, seeds=3, epochs=2, model=with_batch_norm)
    ready = prepare(scenario)
    assert isinstance(ready, Sequential)
    record = train(ready)
    assert record["seed_final_loss"] == [run(single)["final_loss"] for single in seed_scenarios(scenario)]
    assert_same_as_alone(record, [run(single) for single in seed_scenarios(scenario)])


def test_a_record_of_many_seeds():
    scenario = OPTIMIZERS["sgd"].scenario(100, seed=2, seeds=32)
    record = run(scenario)
    assert (record["seeds"], record["seed"], record["seed_runs"]) == (32, 2, "vectorised")
    assert all(len(record[field]) == 32 for field in seed_fields(LINE.table))
    assert record["pass_rate"] == record["seed_status"].count("converged") / 32
    each = [f - o for f, o in zip(record["seed_final_loss"], record["seed_reference_loss"], strict=True)]
    assert record["seed_excess_loss"] == each
    excess = sorted(each)
    assert record["excess_loss_q50"] == excess[15]  # nearest rank: the 16th of 32
    assert record["excess_loss_q95"] == excess[30]  # the 31st of 32
    for name in ("slope_error", "intercept_error"):  # the other bounded metrics, likewise
        ordered = sorted(record[seed_field(name)])
        assert (record[f"{name}_q50"], record[f"{name}_q95"]) == (ordered[15], ordered[30]), name
    # Quantiles only of the bounded metrics.
    assert not any(field.startswith(("slope_q", "intercept_q", "distance_q")) for field in record)
    assert len(record["epoch_loss_q50"]) == len(record["epoch_loss"])
    assert all(
        low <= middle <= high
        for low, middle, high in zip(
            record["epoch_loss_q10"], record["epoch_loss_q50"], record["epoch_loss_q90"], strict=True
        )
    )


def test_the_templates_optimizer_is_elementwise_as_it_claims():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "templates" / "conftest.py"
    spec = importlib.util.spec_from_file_location("template_conftest", path)
    template = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(template)
    (info,) = template.pytest_optbench_optimizers()
    assert info.elementwise
    scenario = info.scenario(10, seeds=4, epochs=3, shuffle=True)
    _, replicas = trained_as_replicas(scenario)
    for mine, theirs in zip(replicas, trained_alone(scenario), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=True))


@pytest.mark.parametrize("batch_size", [1, 10, 100])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_replicas_equal_sequential_runs_bitwise_in_float64(name, batch_size):
    scenario = OPTIMIZERS[name].scenario(batch_size, seed=1, seeds=3, epochs=3, shuffle=True, dtype="float64")
    record, replicas = trained_as_replicas(scenario)
    for mine, theirs in zip(replicas, trained_alone(scenario), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=True))
    assert record["dtype"] == "float64" and record["seed_runs"] == "vectorised"
    assert_same_as_alone(record, [run(single) for single in seed_scenarios(scenario)])


def test_bfloat16_seeds_run_one_after_another():
    """Stacked, bfloat16 replicas drift from their own runs by rounding (see EXACT_DTYPES)."""
    scenario = OPTIMIZERS["adam"].scenario(10, seeds=3, epochs=2, dtype="bfloat16")
    assert isinstance(prepare(scenario), Sequential)
    assert OPTIMIZERS["adam"].auto_seeds("bfloat16") == 1 and OPTIMIZERS["adam"].auto_seeds() == 32


def test_a_scenario_prepared_again_reuses_its_traced_graphs_and_trains_the_same(monkeypatch):
    from optbench.engine import replicas

    traced = []
    real = replicas.make_fx
    monkeypatch.setattr(replicas, "make_fx", lambda fn: traced.append(fn) or real(fn))
    monkeypatch.setattr(replicas, "_traced", type(replicas._traced)())
    scenario = OPTIMIZERS["adam"].scenario(10, seeds=4)
    first = prepare(scenario)
    once = len(traced)
    assert once == 2  # the step (10 divides the 100 samples: one batch length) and the loss
    again = prepare(scenario)
    assert len(traced) == once  # the benchmark's next round: nothing traced again
    assert again.replicas.step_graphs is first.replicas.step_graphs
    assert again.replicas.params[0] is not first.replicas.params[0]  # fresh models, fresh optimizer
    assert again.replicas.optimizer is not first.replicas.optimizer
    timeless = [{k: v for k, v in train(ready).items() if "seconds" not in k} for ready in (first, again)]
    assert timeless[0] == timeless[1]  # the same run: every field of the record but its times
    other = replace(scenario, seed=100)  # another scenario: its own graphs
    prepare(other)
    assert len(traced) == 2 * once
    for index in range(replicas.TRACED_KEPT):  # only the last few scenarios' graphs are kept
        prepare(replace(scenario, seed=200 + index))
    assert scenario not in replicas._traced and len(replicas._traced) == replicas.TRACED_KEPT


def test_a_scenario_that_cannot_be_hashed_is_traced_afresh_and_trains(monkeypatch):
    # Keyword arguments from JSON hold lists (betas); such a scenario keys nothing, and still runs.
    from optbench.engine import replicas

    monkeypatch.setattr(replicas, "_traced", type(replicas._traced)())
    betas = [0.9, 0.99]
    scenario = replace(
        OPTIMIZERS["adam"].scenario(10, seeds=2),
        optimizer=partial(torch.optim.Adam, lr=0.3, betas=betas),
        hyperparams=(("betas", betas), ("lr", 0.3)),
    )
    with pytest.raises(TypeError):
        hash(scenario)
    ready = prepare(scenario)
    assert isinstance(ready, Vectorised) and not replicas._traced
    assert train(ready)["seed_runs"] == "vectorised"
