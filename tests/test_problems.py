"""Problems as data: the table, the line as its first entry, the engine training what a problem says."""

import pickle
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from optbench import OPTIMIZERS, LineDataset, least_squares, prepare, run
from optbench.problems import LINE, PROBLEMS, Problems, UnknownProblemError

# The line's data and model under another loss, to see which loss the engine steps on; its reference
# (least squares) is not that loss's optimum, so only the loss path is checked with it.
ABSOLUTE = replace(LINE, name="line_l1", loss=F.l1_loss)


def test_the_line_is_the_first_and_default_problem():
    assert next(iter(PROBLEMS)) == "line" and PROBLEMS.default is LINE is PROBLEMS["line"]
    with pytest.raises(UnknownProblemError, match=r"^unknown problem 'nosuch'; choose from line$"):
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
    assert list(PROBLEMS.with_entries([ABSOLUTE])) == ["line", "line_l1"] and list(PROBLEMS) == ["line"]
    with pytest.raises(ValueError, match="must be lower-case"):
        replace(LINE, name="Line")


@pytest.mark.parametrize("seed", [0, 7])
def test_the_line_is_the_tutorials_data_and_its_exact_least_squares(seed):
    x, y = LINE.data(seed)
    dataset = LineDataset(seed)
    assert torch.equal(x, dataset.x) and torch.equal(y, dataset.y)
    reference, exact = LINE.reference(x, y), least_squares(x, y)
    assert (reference.loss, reference.params) == (exact.mse, (exact.slope, exact.intercept))
    assert LINE.truth == (dataset.slope, dataset.intercept) == (-5.0, 1.0)
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
    assert record["epoch_mse"][0] == pytest.approx(start, rel=1e-6)
    assert record["epoch_mse"][0] != pytest.approx(F.mse_loss(ready.model(x), y).item(), rel=1e-3)
    # Replicas step on the problem's loss too: each seed ends where it ends alone.
    alone = run(replace(scenario, seeds=1))
    assert record["epoch_mse"] == alone["epoch_mse"] and record["slope"] == alone["slope"]


def test_a_problem_builds_its_own_model():
    def wide(seed: int) -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Linear(4, 1))

    ready = prepare(OPTIMIZERS["sgd"].scenario(100, problem=replace(LINE, name="wide", model=wide)))
    assert [tuple(p.shape) for p in ready.model.parameters()] == [(4, 1), (4,), (1, 4), (1,)]


@pytest.mark.parametrize(("name", "seeds", "how"), [("sgd", 1, "one"), ("adam", 3, "vectorised")])
def test_the_record_keeps_what_the_problem_measures_of_each_seeds_model(name, seeds, how):
    def weight_and_bias(model: torch.nn.Module) -> dict[str, float]:
        return {"slope": 100 + model.weight.item(), "intercept": 100 + model.bias.item()}

    problem = replace(LINE, name="offset", measure=weight_and_bias)
    record = run(OPTIMIZERS[name].scenario(10, epochs=3, seeds=seeds, problem=problem))
    plain = run(OPTIMIZERS[name].scenario(10, epochs=3, seeds=seeds))
    assert record["seed_runs"] == plain["seed_runs"] == how
    # Each seed's model, vectorised or not, is measured as its own: the weight is the line's slope.
    for mine, line in zip(record["seed_slope"], plain["seed_slope"], strict=True):
        assert mine - 100 == pytest.approx(line, abs=1e-5)
    assert record["intercept"] - 100 == pytest.approx(plain["intercept"], abs=1e-5)


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
    odd = replace(LINE, name="odd", measure=lambda model: {"slope": 1.0, "epochs": 999})
    with pytest.raises(
        ValueError, match=r"^sgd-bs10-cpu-odd: problem 'odd' measured \['epochs', 'slope'\]; its measure must"
    ):
        run(OPTIMIZERS["sgd"].scenario(10, epochs=1, problem=odd))


def test_a_problem_may_not_take_a_dtypes_name():
    with pytest.raises(ValueError, match=r"^problem name 'float64' is a dtype's; give the problem another$"):
        OPTIMIZERS["sgd"].scenario(10, problem=replace(LINE, name="float64"))
