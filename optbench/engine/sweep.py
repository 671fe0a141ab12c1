"""Several learning rates of one scenario, each over the same seeds, trained as one vectorised run.

The points of a sweep are scenarios that differ only in their ``lr``. Where their seeds
run as replicas (``replicas.applies``), every point's seeds are stacked into one run:
one forward and backward for all L x K replicas, and one parameter group per learning
rate holding a view of its K rows (each row a replica's parameters side by side), so
torch's own update runs on each group as on a run of that learning rate alone.
tests/test_sweep.py proves each point's numbers equal to its own run's, bit for bit. Other
points run one after another through ``engine.fit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from optbench import schedules
from optbench.engine import (
    Fitted,
    _data,
    _model,
    _target,
    check_bound,
    check_modes,
    fit,
    prepare,
    replica_fits,
    replicas,
    seed_scenarios,
    total_steps,
)
from optbench.problems import Reference
from optbench.scenario import Scenario

LR = "lr"
"""The keyword argument a sweep varies."""


def lr_of(scenario: Scenario) -> float:
    """The learning rate a point was built with (its ``hyperparams``' ``lr``).

    Raises:
        ValueError: the scenario was built without one.
    """
    found = dict(scenario.hyperparams).get(LR)
    if not isinstance(found, (int, float)) or isinstance(found, bool):
        raise ValueError(
            f"{scenario.id}: a sweep's point needs a numeric lr in its hyperparams, got {found!r}"
        )
    return float(found)


def _same_but_lr(points: Sequence[Scenario]) -> None:
    first = points[0]
    rest = tuple((k, v) for k, v in first.hyperparams if k != LR)
    for point in points[1:]:
        other = replace(point, optimizer=first.optimizer, hyperparams=first.hyperparams)
        if other != first or tuple((k, v) for k, v in point.hyperparams if k != LR) != rest:
            raise ValueError(f"{point.id}: a sweep's points may differ only in their lr")


@dataclass
class Stacked:
    """Every point's seeds prepared as the replicas of one run, point after point."""

    points: tuple[Scenario, ...]
    replicas: replicas.Replicas
    optima: tuple[Reference, ...]
    targets: tuple[tuple[float, ...], ...]
    """Each seed's target: the same seeds, and so the same targets, at every point."""


def stackable(points: Sequence[Scenario]) -> bool:
    """Whether the points' seeds can run as replicas of one run (before trying to trace the model)."""
    first = points[0]
    return replicas.applies(
        elementwise=first.elementwise,
        needs_closure=first.needs_closure,
        dtype=first.dtype,
        create_graph=first.create_graph,
    )


def prepare_points(points: Sequence[Scenario]) -> Stacked | None:
    """The points stacked as one run, or ``None`` where they must run one after another.

    Raises:
        ValueError: no points, or points that differ in more than their ``lr``.
        StaleOptimizerError: the factory built an optimizer that does not hold the groups' views.
    """
    if not points:
        raise ValueError("a sweep needs at least one learning rate")
    _same_but_lr(points)
    lrs = [lr_of(point) for point in points]
    first = points[0]
    if not stackable(points):
        return None
    singles = seed_scenarios(first)
    data = [_data(first, single.seed) for single in singles]
    optima = tuple(first.problem.reference(one.x, one.y) for one in data)
    device = torch.device(first.device)
    models = [_model(first, single.seed, device) for single in singles]
    try:
        stacked = replicas.prepare(
            models * len(points),
            [(one.x, one.y) for one in data] * len(points),
            first.optimizer,
            loss=first.problem.loss,
            seeds=[single.seed for single in singles] * len(points),
            batch_size=first.batch_size,
            epochs=first.epochs,
            shuffle=first.shuffle,
            device=device,
            lrs=lrs,
            train_eval=first.train_eval,
        )
    except replicas.NotVectorisableError:
        return None
    check_bound(stacked.optimizer, stacked.params, first.id)
    if first.train_eval:
        check_modes(stacked.optimizer, first.id)
    stacked.schedulers = schedules.attach(
        first.schedule, stacked.optimizer, total_steps(first, stacked.x.shape[1]), first.id
    )
    targets = tuple(_target(one, optimum, first.id) for one, optimum in zip(data, optima, strict=True))
    return Stacked(tuple(points), stacked, optima, targets)


@dataclass
class Swept:
    """What ``fit_points`` returns: each point's outcome, and how they ran."""

    fitted: list[Fitted]
    stacked: bool
    """All points ran as one vectorised run, whose time each point's ``Fitted.seconds`` holds."""
    seconds: float
    """The whole sweep's training time."""


def fit_points(points: Sequence[Scenario]) -> Swept:
    """Trains every point once: stacked where ``prepare_points`` can, else one after another."""
    stacked = prepare_points(points)
    if stacked is None:
        fitted = [fit(prepare(point)) for point in points]
        return Swept(fitted, False, sum(one.seconds for one in fitted))
    trace = replicas.train(stacked.replicas)
    count = len(stacked.optima)
    fitted = []
    for position, point in enumerate(stacked.points):
        seeds = replica_fits(
            point, stacked.replicas, trace, stacked.optima, stacked.targets, first=position * count
        )
        fitted.append(Fitted(point, seeds, trace.seconds, "vectorised"))
    return Swept(fitted, True, trace.seconds)
