"""A learning-rate sweep stacked as one run must give each point the numbers of that point's own run.

Each learning rate's replicas are a parameter group holding views of their rows of the stacked
parameters; torch's own update runs on each group. This proves it per elementwise optimizer and
implementation: every point's record equals, bit for bit, the record of that lr run alone.
"""

from dataclasses import replace
from functools import partial

import pytest
import torch

from optbench import OPTIMIZERS, run
from optbench.engine import StaleOptimizerError, summarise
from optbench.engine.sweep import fit_points, lr_of, prepare_points
from optbench.problems import LINE
from optbench.tune.sweep import Job

ELEMENTWISE = [name for name, info in OPTIMIZERS.items() if info.elementwise]
CASES = [(name, impl) for name in ELEMENTWISE for impl in OPTIMIZERS[name].impls()]
GRID = (1e-3, 0.1, 30.0)
"""A learning rate that barely moves, one that converges for most, one that diverges for most."""


def points(name, batch_size, grid=GRID, seeds=3, epochs=4, impl=""):
    info = OPTIMIZERS[name]
    base = info.scenario(batch_size, seeds=seeds, epochs=epochs, impl=impl)
    found = []
    for lr in grid:
        hyperparams = {**dict(base.hyperparams), "lr": lr}
        found.append(
            replace(
                base,
                optimizer=partial(info.factory, **hyperparams),
                hyperparams=tuple(sorted(hyperparams.items())),
            )
        )
    return found


TIMED = ("seconds", "target_seconds", "seed_target_seconds")


def untimed(record):
    """The record without its wall-clock fields, which two runs of one scenario may differ in."""
    return {key: value for key, value in record.items() if key not in TIMED}


def alone(point):
    return run(point)


@pytest.mark.parametrize(("name", "impl"), CASES)
def test_every_point_of_a_stacked_sweep_is_its_own_run_bitwise(name, impl):
    chosen = points(name, 10, impl=impl)
    swept = fit_points(chosen)
    assert swept.stacked
    for point, fitted in zip(chosen, swept.fitted, strict=True):
        record, own = summarise(fitted), alone(point)
        assert untimed(record) == untimed(own), point.id


@pytest.mark.parametrize("batch_size", [1, 100])
def test_stacked_sweeps_hold_at_one_sample_and_at_full_batch(batch_size):
    chosen = points("adam", batch_size, grid=(0.01, 3.0), seeds=2, epochs=3)
    swept = fit_points(chosen)
    assert swept.stacked
    for point, fitted in zip(chosen, swept.fitted, strict=True):
        assert untimed(summarise(fitted)) == untimed(alone(point))


def test_a_learning_rate_whose_seeds_all_diverge_stops_where_its_own_run_stops():
    # SGD at lr 30 diverges within an epoch; lr 0.01 trains on. Alone, the lr-30 run stops once
    # every seed is non-finite, with its parameters where they were; stacked, its group must stop too.
    chosen = points("sgd", 10, grid=(0.01, 30.0), seeds=2, epochs=6)
    swept = fit_points(chosen)
    diverging = summarise(swept.fitted[1])
    assert diverging["seed_status"] == ["diverged", "diverged"]
    assert diverging["distance"] is not None  # the parameters froze, finite, where the run stopped
    for point, fitted in zip(chosen, swept.fitted, strict=True):  # the lr training on, too
        assert untimed(summarise(fitted)) == untimed(alone(point))


def test_an_optimizer_that_merges_the_groups_sweeps_point_by_point():
    def merged(groups, **kwargs):  # one group for all: every point would train at one lr
        params = [p for group in groups for p in (group["params"] if isinstance(group, dict) else [group])]
        return torch.optim.SGD(params, **kwargs)

    chosen = [
        replace(point, optimizer=partial(merged, lr=lr_of(point)))
        for point in points("sgd", 10, grid=(0.01, 0.1))
    ]
    assert prepare_points(chosen) is None
    swept = fit_points(chosen)
    assert not swept.stacked
    for point, fitted in zip(chosen, swept.fitted, strict=True):
        assert untimed(summarise(fitted)) == untimed(alone(point))


def test_optimizers_not_elementwise_sweep_point_by_point():
    chosen = points("lbfgs", 100, grid=(0.1, 1.0), seeds=1, epochs=3)
    assert prepare_points(chosen) is None
    swept = fit_points(chosen)
    assert not swept.stacked
    for point, fitted in zip(chosen, swept.fitted, strict=True):
        assert untimed(summarise(fitted)) == untimed(alone(point))


def test_points_may_differ_only_in_their_lr():
    chosen = points("adam", 10, grid=(0.01, 0.1))
    with pytest.raises(ValueError, match="only in their lr"):
        prepare_points([chosen[0], replace(chosen[1], batch_size=20)])
    with pytest.raises(ValueError, match="at least one"):
        prepare_points([])
    no_lr = replace(chosen[0], hyperparams=())
    with pytest.raises(ValueError, match="numeric lr"):
        lr_of(no_lr)


def test_a_factory_that_ignores_the_groups_is_refused():
    # A factory that builds its optimizer from other parameters than the groups' views would
    # train nothing of the sweep: the tutorial's bug, caught as for a single run.
    chosen = [
        replace(point, optimizer=lambda params: torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))]))
        for point in points("sgd", 10, grid=(0.01, 0.1))
    ]
    assert prepare_points(chosen) is None  # not one group per lr: it cannot stack
    with pytest.raises(StaleOptimizerError):
        fit_points(chosen)  # and point by point, each run's own check catches it


def test_a_job_sweeps_the_registrys_settings_but_the_lr():
    job = Job(OPTIMIZERS["radam"], LINE, 10, grid=(0.01, 0.1), seeds=4)
    base = OPTIMIZERS["radam"].scenario(10, seeds=4)
    for point, lr in zip(job.points(), (0.01, 0.1), strict=True):
        assert lr_of(point) == lr
        assert {k: v for k, v in point.hyperparams if k != "lr"} == {
            k: v for k, v in base.hyperparams if k != "lr"
        }
        assert (point.epochs, point.seeds, point.batch_size) == (base.epochs, 4, 10)
    assert Job(OPTIMIZERS["lbfgs"], LINE, 10, seeds=None).base().seeds == 1
    assert Job(OPTIMIZERS["adam"], LINE, 10, seeds=None).base().seeds == 32
