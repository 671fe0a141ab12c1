"""Problems as data: the table, the line as its first entry, the engine training what a problem says."""

import math
import pickle
import re
from dataclasses import replace
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from optbench import OPTIMIZERS, LineDataset, least_squares, prepare, run
from optbench.problems import (
    GENERIC,
    LINE,
    NO_DATA,
    PROBLEMS,
    Metric,
    Problem,
    Problems,
    Reference,
    UnknownProblemError,
    cached,
)

# The line's data and model under another loss, to see which loss the engine steps on; its reference
# (least squares) is not that loss's optimum, so only the loss path is checked with it.
ABSOLUTE = replace(LINE, name="line_l1", loss=F.l1_loss)


def test_the_line_is_the_first_and_default_problem():
    assert next(iter(PROBLEMS)) == "line" and PROBLEMS.default is LINE is PROBLEMS["line"]
    choices = ", ".join(PROBLEMS)
    assert choices.startswith("line, ill_conditioned")
    with pytest.raises(UnknownProblemError, match=rf"^unknown problem 'nosuch'; choose from {choices}$"):
        PROBLEMS["nosuch"]


def test_a_problem_table_refuses_no_problems_and_a_name_twice():
    with pytest.raises(ValueError, match="at least one problem"):
        Problems(())
    with pytest.raises(
        ValueError, match=r"^two problems share the name 'line'; give each a name of its own$"
    ):
        Problems((LINE, LINE))
    with pytest.raises(ValueError, match=r"^problem 'line' is already in the table; give yours a name"):
        PROBLEMS.with_entries([LINE])
    with pytest.raises(
        ValueError, match=r"^'line' is not a Problem; return optbench.problems.Problem values$"
    ):
        PROBLEMS.with_entries(["line"])
    assert list(PROBLEMS.with_entries([ABSOLUTE])) == [*PROBLEMS, "line_l1"] and "line_l1" not in PROBLEMS
    with pytest.raises(ValueError, match="must be lower-case"):
        replace(LINE, name="Line")


@pytest.mark.parametrize("rounds", [0, -1, 1.5, True, "2"])
def test_a_problems_rounds_are_a_positive_integer_or_none(rounds):
    with pytest.raises(ValueError, match=r"^problem 'line': rounds must be a positive integer or None$"):
        replace(LINE, rounds=rounds)
    assert replace(LINE, rounds=3).rounds == 3 and LINE.rounds is None


@pytest.mark.parametrize("seed", [0, 7])
def test_the_line_is_the_tutorials_data_and_its_exact_least_squares(seed):
    x, y = LINE.data(seed)
    dataset = LineDataset(seed)
    assert torch.equal(x, dataset.x) and torch.equal(y, dataset.y)
    reference, exact = LINE.reference(x, y), least_squares(x, y)
    assert (reference.loss, reference.params) == (exact.mse, (exact.slope, exact.intercept))
    assert LINE.truth == dataset.truth == (dataset.slope, dataset.intercept) == (-5.0, 1.0)
    assert [LINE.epochs_for(bs) for bs in LINE.batch_sizes] == [20, 20, 100, 100]


def test_ids_on_the_line_are_unchanged_and_other_problems_ids_carry_their_name():
    adam = OPTIMIZERS["adam"]
    assert adam.scenario(10).id == "adam-bs10-cpu" == adam.scenario(10, problem=LINE).id
    assert adam.scenario(10, problem=ABSOLUTE).id == "adam-bs10-cpu-line_l1"
    assert adam.scenario(10, problem=ABSOLUTE, dtype="float64").id == "adam-bs10-cpu-line_l1-float64"
    with pytest.raises(ValueError, match=r"problem must be a Problem \(optbench.problems\), got 'line'"):
        adam.scenario(10, problem="line")


@pytest.mark.parametrize(("name", "seeds", "how"), [("sgd", 1, "one"), ("adam", 3, "vectorised")])
def test_the_engine_trains_and_measures_with_the_problems_loss(name, seeds, how):
    scenario = OPTIMIZERS[name].scenario(10, epochs=3, seeds=seeds, problem=ABSOLUTE)
    ready = prepare(replace(scenario, seeds=1))
    x, y = ready.x, ready.y
    with torch.no_grad():
        start = F.l1_loss(ready.model(x), y).item()
    record = run(scenario)
    assert record["seed_runs"] == how
    assert record["epoch_loss"][0] == pytest.approx(start, rel=1e-6)
    assert record["epoch_loss"][0] != pytest.approx(F.mse_loss(ready.model(x), y).item(), rel=1e-3)
    assert record["final_loss"] == record["epoch_loss"][-1]
    # Replicas step on the problem's loss too: each seed ends where it ends alone.
    alone = run(replace(scenario, seeds=1))
    assert record["epoch_loss"] == alone["epoch_loss"] and record["slope"] == alone["slope"]


def test_a_problem_builds_its_own_model():
    def wide(seed: int) -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Linear(4, 1))

    ready = prepare(OPTIMIZERS["sgd"].scenario(100, problem=replace(LINE, name="wide", model=wide)))
    assert [tuple(p.shape) for p in ready.model.parameters()] == [(4, 1), (4,), (1, 4), (1,)]


@pytest.mark.parametrize(("name", "seeds", "how"), [("sgd", 1, "one"), ("adam", 3, "vectorised")])
def test_the_record_keeps_what_the_problem_measures_of_each_seeds_model(name, seeds, how):
    targets = []

    def weight_and_bias(model: torch.nn.Module, target: tuple[float, ...]) -> dict[str, float]:
        targets.append(target)
        slope, intercept = model.weight.item(), model.bias.item()
        return {
            "slope": 100 + slope,
            "intercept": 100 + intercept,
            "slope_error": 200 + abs(slope - target[0]),
            "intercept_error": 200 + abs(intercept - target[1]),
        }

    problem = replace(LINE, name="offset", measure=weight_and_bias)
    assert problem.metrics == LINE.metrics and problem.measured == LINE.measured
    on_the_line = OPTIMIZERS[name].scenario(10, epochs=3, seeds=seeds)
    # The line's scenario (its tuned hyper-parameters) on the problem: only the measure differs.
    record = run(replace(on_the_line, problem=problem))
    plain = run(on_the_line)
    assert record["id"] == f"{name}-bs10-cpu-offset" and record["hyperparams"] == plain["hyperparams"]
    assert record["seed_runs"] == plain["seed_runs"] == how
    # Each seed is measured once, against the line's truth.
    assert targets == [LINE.truth] * seeds
    # Each seed's model, vectorised or not, is measured as its own: the weight is the line's slope.
    for mine, line in zip(record["seed_slope"], plain["seed_slope"], strict=True):
        assert mine - 100 == pytest.approx(line, abs=1e-5)
    for mine, line in zip(record["seed_slope_error"], plain["seed_slope_error"], strict=True):
        assert mine - 200 == pytest.approx(line, abs=1e-5)
    assert record["intercept"] - 100 == pytest.approx(plain["intercept"], abs=1e-5)
    assert record["intercept_error"] - 200 == pytest.approx(plain["intercept_error"], abs=1e-5)
    # The generic metrics are the engine's, whatever the problem measures.
    for metric in GENERIC:
        assert record[f"seed_{metric.name}"] == plain[f"seed_{metric.name}"], metric.name


def test_a_problem_brings_its_own_epochs_and_none_of_the_lines_tuning():
    short = replace(LINE, name="short", epochs={100: 3}, default_epochs=2)
    adadelta = OPTIMIZERS["adadelta"]  # tuned on the line: 300 epochs at batch size 100
    assert adadelta.scenario(100).epochs == 300
    assert (adadelta.scenario(100, problem=short).epochs, adadelta.scenario(10, problem=short).epochs) == (
        3,
        2,
    )
    lbfgs = OPTIMIZERS["lbfgs"]  # measured unreliable on the line at batch size 1, unknown elsewhere
    assert lbfgs.expected_failure(1) is not None and lbfgs.expected_failure(1, problem=short) is None


def test_problems_and_scenarios_on_them_hash_and_pickle():
    scenario = OPTIMIZERS["adam"].scenario(10, problem=ABSOLUTE)
    assert pickle.loads(pickle.dumps(scenario)).id == "adam-bs10-cpu-line_l1"
    assert hash(LINE) == hash(replace(LINE)) and dict(LINE.epochs) == {1: 20, 10: 20, 50: 100, 100: 100}


def test_a_measure_that_misses_the_records_fields_is_one_line():
    odd = replace(LINE, name="odd", measure=lambda model, target: {"slope": 1.0, "epochs": 999})
    with pytest.raises(
        ValueError,
        match=r"^sgd-bs10-cpu-odd: problem 'odd' measured \['epochs', 'slope'\]; its measure must return "
        r"a dict of exactly slope, intercept, slope_error, intercept_error, its own metrics$",
    ):
        run(OPTIMIZERS["sgd"].scenario(10, epochs=1, problem=odd))


@pytest.mark.parametrize(
    "measured",
    [
        pytest.param({"slope": 1.0, "intercept": 1.0, "slope_error": 0.0}, id="one-missing"),
        pytest.param(
            {"slope": 1.0, "intercept": 1.0, "slope_error": 0.0, "intercept_error": 0.0, "distance": 0.0},
            id="a-generic-one-too",
        ),
    ],
)
def test_a_measure_must_return_exactly_the_problems_own_metrics(measured):
    assert LINE.measured == ("slope", "intercept", "slope_error", "intercept_error")
    odd = replace(LINE, name="odd", measure=lambda model, target: dict(measured))
    got = re.escape(str(sorted(measured)))
    with pytest.raises(ValueError, match=rf"^sgd-bs10-cpu-odd: problem 'odd' measured {got}; its measure"):
        run(OPTIMIZERS["sgd"].scenario(10, epochs=1, problem=odd))


def test_a_problem_may_not_take_a_dtypes_name():
    with pytest.raises(ValueError, match=r"^problem name 'float64' is a dtype's; give the problem another$"):
        OPTIMIZERS["sgd"].scenario(10, problem=replace(LINE, name="float64"))


def test_the_lines_metric_table():
    assert [metric.name for metric in LINE.table] == [
        "final_loss", "reference_loss", "excess_loss", "distance",
        "slope", "intercept", "slope_error", "intercept_error",
    ]  # fmt: skip
    table = {metric.name: metric for metric in LINE.table}
    assert table["excess_loss"] == Metric("excess_loss", "excess MSE", bound=0.3, tolerance=0.05)
    assert table["slope_error"] == Metric("slope_error", "slope error", bound=0.2, tolerance=0.15)
    assert table["intercept_error"] == Metric("intercept_error", "intercept error", bound=0.3, tolerance=0.25)
    assert all(table[name].bound is None for name in ("final_loss", "reference_loss", "distance", "slope"))
    with pytest.raises(ValueError, match=r"^problem 'unbound': give at least one metric a bound"):
        replace(LINE, name="unbound", metrics=(Metric("slope"), Metric("intercept")))
    with pytest.raises(
        ValueError, match=r"^problem 'twice': its metrics must be Metric values with distinct"
    ):
        replace(LINE, name="twice", metrics=(*LINE.metrics, Metric("slope")))


EVERY_PROBLEM = [problem for problem in [*PROBLEMS.values(), ABSOLUTE] if problem.name != "sine"]
"""Every problem whose reference has parameters: the sine's is a loss alone (one of many equivalent
minima), so its distance is NaN by design (``test_a_reference_without_parameters_has_no_distance``)."""
FLOAT32 = torch.finfo(torch.float32).eps


@pytest.mark.parametrize("problem", EVERY_PROBLEM, ids=lambda problem: problem.name)
def test_every_problem_reports_the_generic_metrics_and_the_distance_to_its_reference(problem):
    seed = 3
    x, y = problem.seed_data(seed)
    reference = problem.reference(x, y)
    target = problem.truth if problem.truth is not None else reference.params
    model = problem.model(2 * seed + 1)
    solution = torch.tensor(reference.params, dtype=torch.float64)
    assert parameters_to_vector(model.parameters()).shape == solution.shape

    # The model set to the reference solution: no distance but float32's rounding of the solution.
    vector_to_parameters(solution.to(torch.float32), model.parameters())
    at = problem.evaluate(model, reference, target, final_loss=reference.loss)
    assert list(at) == [metric.name for metric in problem.table]
    assert list(at)[: len(GENERIC)] == [metric.name for metric in GENERIC]
    assert all(isinstance(value, float) for value in at.values())
    assert at["final_loss"] == at["reference_loss"] == reference.loss and at["excess_loss"] == 0.0
    assert 0.0 <= at["distance"] <= FLOAT32 * float(solution.norm())

    # Shifted by 0.25 in every parameter: the shift's norm away.
    shifted = solution + 0.25
    vector_to_parameters(shifted.to(torch.float32), model.parameters())
    off = problem.evaluate(model, reference, target, final_loss=reference.loss + 1.5)
    norm = 0.25 * math.sqrt(solution.numel())
    assert off["distance"] == pytest.approx(norm, abs=FLOAT32 * float(shifted.norm()))
    assert off["distance"] > 100 * at["distance"]
    assert off["final_loss"] == reference.loss + 1.5 and off["reference_loss"] == reference.loss
    assert off["excess_loss"] == (reference.loss + 1.5) - reference.loss
    # The problem's own metrics are its measure's, of the same model against the same target.
    own = problem.measure(model, target) if problem.measure is not None else {}
    assert sorted(own) == sorted(problem.measured)
    assert {name: off[name] for name in problem.measured} == own


def test_a_reference_without_parameters_has_no_distance():
    sine = PROBLEMS["sine"]
    x, y = sine.seed_data(3)
    reference = sine.reference(x, y)
    assert reference.params == ()
    at = sine.evaluate(sine.model(3), reference, (), final_loss=reference.loss + 0.5)
    assert math.isnan(at["distance"]) and at["excess_loss"] == pytest.approx(0.5)


BOWL_CENTRE = (1.5, -0.5)


class Bowl(torch.nn.Module):
    """Two parameters and no data: the prediction is their squared distance from the bowl's centre."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.p = torch.nn.Parameter(3 * torch.randn(2, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (a, b), p = BOWL_CENTRE, self.p
        return ((p[0] - a) ** 2 + (p[1] - b) ** 2).expand(x.shape[0], 1)


def prediction_mean(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The objective is the prediction itself; there is no target to fit."""
    return prediction.mean()


def bowl_reference(x: torch.Tensor, y: torch.Tensor) -> Reference:
    return Reference(loss=0.0, params=BOWL_CENTRE)


BOWL = Problem(
    name="bowl",
    data=None,
    model=Bowl,
    loss=prediction_mean,
    reference=bowl_reference,
    metrics=(Metric("excess_loss", "excess loss", bound=1e-8),),
    batch_sizes=(1,),
    epochs={1: 100},
)


@pytest.mark.parametrize(("seeds", "how"), [(1, "one"), (3, "vectorised")])
def test_a_problem_without_data_trains_on_its_parameters_alone(seeds, how):
    assert BOWL.seed_data(0) is NO_DATA and BOWL.measured == ()
    assert [metric.name for metric in BOWL.table] == [metric.name for metric in GENERIC]
    scenario = OPTIMIZERS["sgd"].scenario(
        1, seeds=seeds, problem=BOWL, optimizer=partial(torch.optim.SGD, lr=0.1)
    )
    assert scenario.id == "sgd-full-cpu-bowl" and scenario.epochs == 100
    start = Bowl(1).p.detach().double()  # the first seed's model: seeded 2 * seed + 1
    record = run(scenario)
    assert record["seed_runs"] == how and record["problem"] == "bowl"
    assert record["steps"] == 100  # NO_DATA is one sample: one step per epoch
    assert record["epoch_loss"][0] == pytest.approx(float((start - torch.tensor(BOWL_CENTRE)).square().sum()))
    assert record["epoch_loss"][0] > 1 and record["epoch_loss"][-1] < 1e-8
    assert record["status"] == "converged" and record["seed_status"] == ["converged"] * seeds
    assert record["reference_loss"] == 0.0 and record["excess_loss"] == record["final_loss"]
    # Each step moves p 20% of the way to the centre (SGD at lr 0.1 on the bowl): it ends there.
    assert record["distance"] < 1e-5 and all(value < 1e-5 for value in record["seed_distance"])
    assert math.dist(start.tolist(), BOWL_CENTRE) > 1


def test_a_problem_without_data_that_does_not_get_there_is_not_converged():
    scenario = OPTIMIZERS["sgd"].scenario(1, problem=BOWL, optimizer=partial(torch.optim.SGD, lr=0.001))
    record = run(scenario)
    assert record["status"] == "not_converged"
    assert record["distance"] > 1e-3 and record["excess_loss"] > 1e-8


def test_cached_solves_each_distinct_data_once():
    calls = []

    def solve(x: torch.Tensor, y: torch.Tensor) -> Reference:
        calls.append(1)
        fit = least_squares(x, y)
        return Reference(loss=fit.mse, params=(fit.slope, fit.intercept))

    reference = cached(solve)
    assert reference.__name__ == "solve"
    x, y = LINE.data(0)
    first = reference(x, y)
    assert first == LINE.reference(x, y) and len(calls) == 1
    # The same values again, as other tensors or in float64, are not solved again.
    assert reference(x, y) is first and reference(x.clone(), y.clone()) is first
    assert reference(x.double(), y.double()) is first and len(calls) == 1
    # Other values, or the same values in another shape, are other data.
    other = reference(*LINE.data(1))
    assert other != first and len(calls) == 2
    reference(x.view(1, -1), y)
    assert len(calls) == 3

    # Through the engine: each seed's data is solved once, however many scenarios train on it.
    calls.clear()
    counted = replace(LINE, name="counted", reference=cached(solve))
    for name in ("adam", "sgd", "lbfgs"):  # vectorised, vectorised, one seed after another
        record = run(OPTIMIZERS[name].scenario(100, seeds=3, epochs=1, problem=counted))
        assert record["seed_reference_loss"] == [LINE.reference(*LINE.data(seed)).loss for seed in range(3)]
    assert len(calls) == 3
    run(OPTIMIZERS["sgd"].scenario(100, seed=5, epochs=1, problem=counted))
    assert len(calls) == 4


@pytest.mark.parametrize(
    "name", ["steps", "status", "epoch_loss", "seed_slope2", "slope_q95", "median", "passed"]
)
def test_a_metric_may_not_take_a_name_the_record_uses(name):
    taken = replace(LINE, name="taken", metrics=(*LINE.metrics, Metric(name)))
    with pytest.raises(ValueError, match=rf"^metric name '{name}' is taken by the record's own fields"):
        OPTIMIZERS["sgd"].scenario(10, problem=taken)


def test_a_metric_hashes_by_value_in_every_process():
    metric = Metric("error", bound=0.5)
    assert hash(metric) == hash(Metric("error", bound=0.5)) and metric == Metric("error", bound=0.5)
    copied = pickle.loads(pickle.dumps(metric))  # another process would hash its strings anew
    assert "_hash" not in vars(copied) and copied == metric and hash(copied) == hash(metric)
    assert replace(metric, bound=0.1) != metric
