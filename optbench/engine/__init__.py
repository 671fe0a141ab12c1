"""Trains one scenario and returns a flat record: pure, silent, and never asserting."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import Dataset

from optbench import schedules
from optbench.engine import replicas
from optbench.engine.dataset import as_tensors
from optbench.engine.replicas import Replicas
from optbench.problems import Reference, judged_against
from optbench.record import Record, SeedRuns, checks, fields, spread
from optbench.record.numbers import finite_or_none
from optbench.scenario import OptimizerLike, Scenario

MAX_CURVE_POINTS = 200
"""The per-step loss curve is averaged down to at most this many points."""


class StaleOptimizerError(RuntimeError):
    """The optimizer does not hold exactly the parameters of the model it should train."""


MODES = ("train", "eval")
"""The methods a ``train_eval`` optimizer has: ``train()`` before training steps, ``eval()`` before
every evaluation (schedule-free methods evaluate another iterate than the one they step)."""


def check_modes(optimizer: OptimizerLike, scenario_id: str) -> None:
    """Raises ``TypeError`` unless ``optimizer`` has the ``train()`` and ``eval()`` of ``train_eval``."""
    missing = [name for name in MODES if not callable(getattr(optimizer, name, None))]
    if missing:
        raise TypeError(
            f"{scenario_id}: the optimizer is flagged train_eval but {type(optimizer).__name__} has no "
            f"{' or '.join(name + '()' for name in missing)}; drop the flag or give it those methods"
        )


_CREATE_GRAPH_WARNING = r"Using backward\(\) with create_graph=True"
"""torch's warning about the reference cycle a backward with ``create_graph=True`` leaves between a
parameter and its gradient: ``zero_grad`` (which sets the gradients to ``None``) breaks it every step."""


def backward(loss: torch.Tensor, create_graph: bool) -> None:
    """``loss.backward()``, with ``create_graph=True`` for optimizers that need Hessian-vector products."""
    if not create_graph:
        loss.backward()
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CREATE_GRAPH_WARNING, category=UserWarning)
        loss.backward(create_graph=True)


@dataclass
class Prepared:
    """A fresh model and optimizer with the data on the device: one run, ready to train."""

    scenario: Scenario
    model: nn.Module
    optimizer: OptimizerLike
    x: torch.Tensor
    y: torch.Tensor
    optimum: Reference
    target: tuple[float, ...]
    """What the fit is judged against: the true parameters where known, else the reference's."""
    schedulers: tuple[LRScheduler, ...] = ()
    """The scenario's schedule (``optbench.schedules``), stepped after every optimizer step."""


def check_bound(optimizer: OptimizerLike, own: Sequence[torch.Tensor], scenario_id: str) -> None:
    """Raises ``StaleOptimizerError`` unless ``optimizer`` holds exactly the parameters ``own``.

    This is the tutorial's bug made loud: its second loop stepped an optimizer
    that was built for the first model, so the second model never moved.
    """
    held = [p for group in optimizer.param_groups for p in group["params"]]
    own_ids = {id(p) for p in own}
    held_ids = {id(p) for p in held}
    foreign = sum(1 for p in held if id(p) not in own_ids)
    missing = sum(1 for p in own if id(p) not in held_ids)
    if foreign or missing:
        raise StaleOptimizerError(
            f"{scenario_id}: the optimizer holds {foreign} parameter(s) of another model and "
            f"misses {missing} of the {len(own)} it should train (the tutorial's bug: an "
            "optimizer built for another model); build it from the parameters passed to the factory"
        )
    if len(held) != len(held_ids):
        raise StaleOptimizerError(
            f"{scenario_id}: the optimizer holds a parameter twice; pass each parameter to the optimizer once"
        )


@dataclass(frozen=True)
class _Data:
    """One seed's data in the scenario's dtype, on the CPU, and the parameters it was drawn around."""

    x: torch.Tensor
    y: torch.Tensor
    truth: tuple[float, ...] | None
    """The parameters the data were drawn around where known (``None`` where not)."""


def _data(scenario: Scenario, seed: int) -> _Data:
    """The points the model sees and the reference is solved on: the problem's, or the scenario's own."""
    source = scenario.dataset
    if source is None:
        x, y = scenario.problem.seed_data(seed)
        truth = scenario.problem.truth
    else:
        dataset = source if isinstance(source, Dataset) else source(seed)
        x, y = as_tensors(dataset)
        truth = getattr(dataset, "truth", None)
    return _Data(x.to(scenario.torch_dtype), y.to(scenario.torch_dtype), truth)


def _target(data: _Data, optimum: Reference, scenario_id: str) -> tuple[float, ...]:
    """What the fit is judged against (``optbench.problems.judged_against``), or a one-line error."""
    try:
        return judged_against(data.truth, optimum)
    except ValueError as error:
        raise ValueError(f"{scenario_id}: {error}") from None


def _model(scenario: Scenario, seed: int, device: torch.device) -> nn.Module:
    factory = scenario.model or scenario.problem.model
    return factory(2 * seed + 1).to(device=device, dtype=scenario.torch_dtype)


def _prepare_one(scenario: Scenario) -> Prepared:
    data = _data(scenario, scenario.seed)
    x, y = data.x, data.y
    optimum = scenario.problem.reference(x, y)
    device = torch.device(scenario.device)
    model = _model(scenario, scenario.seed, device)
    optimizer = scenario.optimizer(model.parameters())
    check_bound(optimizer, list(model.parameters()), scenario.id)
    if scenario.train_eval:
        check_modes(optimizer, scenario.id)
    return Prepared(
        scenario=scenario,
        model=model,
        optimizer=optimizer,
        x=x.to(device),
        y=y.to(device),
        optimum=optimum,
        target=_target(data, optimum, scenario.id),
        schedulers=schedules.attach(
            scenario.schedule, optimizer, total_steps(scenario, x.shape[0]), scenario.id
        ),
    )


def total_steps(scenario: Scenario, size: int) -> int:
    """The optimizer steps of a full run of ``scenario`` on ``size`` samples: what a schedule spans."""
    return scenario.epochs * math.ceil(size / min(scenario.batch_size, size))


@dataclass
class Sequential:
    """Several seeds of a scenario, each prepared as its own one-seed run, trained one after another."""

    scenario: Scenario
    runs: tuple[Prepared, ...]


@dataclass
class Vectorised:
    """Several seeds of a scenario prepared as replicas of one vectorised run."""

    scenario: Scenario
    replicas: Replicas
    optima: tuple[Reference, ...]
    targets: tuple[tuple[float, ...], ...]
    """Each seed's target (the true parameters where known, else that seed's reference's)."""


Ready = Prepared | Sequential | Vectorised
"""What ``prepare`` returns and ``train`` takes."""


def seed_scenarios(scenario: Scenario) -> list[Scenario]:
    """One one-seed scenario per seed of ``scenario``: seeds ``seed`` to ``seed + seeds - 1``."""
    return [replace(scenario, seed=scenario.seed + index, seeds=1) for index in range(scenario.seeds)]


def prepare(scenario: Scenario) -> Ready:
    """Builds the data, fresh models and fresh optimizers bound to them (not timed).

    Each seed's model is seeded with ``2 * seed + 1`` and its data with ``seed``,
    so the initialisation and the noise are independent draws. Several seeds of
    an optimizer flagged ``elementwise`` (and needing no closure) are stacked as
    replicas of one vectorised run in float32 and float64, where that is proven
    exact; other optimizers, bfloat16, and models that cannot be stacked train
    their seeds one after another, with the same numbers.

    Raises:
        StaleOptimizerError: the factory returned an optimizer that does not hold
            exactly the parameters it was given.
    """
    if scenario.seeds == 1:
        return _prepare_one(scenario)
    singles = seed_scenarios(scenario)
    if replicas.applies(
        elementwise=scenario.elementwise,
        needs_closure=scenario.needs_closure,
        dtype=scenario.dtype,
        create_graph=scenario.create_graph,
    ):
        data = [_data(scenario, single.seed) for single in singles]
        optima = tuple(scenario.problem.reference(one.x, one.y) for one in data)
        device = torch.device(scenario.device)
        try:
            stacked = replicas.prepare(
                [_model(scenario, single.seed, device) for single in singles],
                [(one.x, one.y) for one in data],
                scenario.optimizer,
                loss=scenario.problem.loss,
                seeds=[single.seed for single in singles],
                batch_size=scenario.batch_size,
                epochs=scenario.epochs,
                shuffle=scenario.shuffle,
                device=device,
                key=scenario,
                train_eval=scenario.train_eval,
            )
        except replicas.NotVectorisableError:
            pass  # the same results, one seed after another
        else:
            check_bound(stacked.optimizer, stacked.params, scenario.id)
            if scenario.train_eval:
                check_modes(stacked.optimizer, scenario.id)
            stacked.schedulers = schedules.attach(
                scenario.schedule, stacked.optimizer, total_steps(scenario, stacked.x.shape[1]), scenario.id
            )
            targets = tuple(
                _target(one, optimum, scenario.id) for one, optimum in zip(data, optima, strict=True)
            )
            return Vectorised(scenario, stacked, optima, targets)
    return Sequential(scenario, tuple(_prepare_one(single) for single in singles))


def _downsample(losses: torch.Tensor, max_points: int) -> tuple[torch.Tensor, int]:
    """Means over consecutive windows along the first dimension, so at most ``max_points`` remain."""
    stride = max(1, math.ceil(losses.shape[0] / max_points))
    if stride == 1:
        return losses, stride
    tail = (-losses.shape[0]) % stride
    if tail:
        losses = torch.cat([losses, losses.new_full((tail, *losses.shape[1:]), math.nan)])
    return losses.view(-1, stride, *losses.shape[1:]).nanmean(dim=1), stride


@dataclass
class SeedFit:
    """What one seed's training left, on the host: the record is built from it, untimed."""

    scenario: Scenario
    """The one-seed scenario of this seed."""
    seconds: float
    epoch_values: list[float]
    losses: torch.Tensor
    """Every step's loss (on the device for a one-model run)."""
    model: Callable[[], nn.Module]
    """This seed's trained model, for the problem to measure when the record is built (untimed).

    A replica's model is rebuilt in a shared template, valid until the next replica's."""
    optimum: Reference
    target: tuple[float, ...]
    steps_per_epoch: int
    """Optimizer steps per epoch: ``ceil(n / batch_size)`` for ``n`` samples (1 without data)."""


@dataclass
class Fitted:
    """What ``fit`` returns: each seed's outcome, the time they took, and how they ran."""

    scenario: Scenario
    seeds: list[SeedFit]
    seconds: float
    how: SeedRuns


def _record(fit: SeedFit) -> dict[str, Any]:
    """One seed's fields of the record, with its status: the run's, then the problem's metrics."""
    scenario, epoch_values = fit.scenario, fit.epoch_values
    problem = scenario.problem
    curve, stride = _downsample(fit.losses, MAX_CURVE_POINTS)
    try:
        metrics = problem.evaluate(fit.model(), fit.optimum, fit.target, final_loss=epoch_values[-1])
    except ValueError as error:
        raise ValueError(f"{scenario.id}: {error}") from None
    record: dict[str, Any] = {
        "id": scenario.id,
        "problem": problem.name,
        "optimizer": scenario.name,
        "batch_size": scenario.batch_size,
        "device": scenario.device,
        "dtype": scenario.dtype,
        "schedule": scenario.schedule,
        "epochs": scenario.epochs,
        "seed": scenario.seed,
        "shuffle": scenario.shuffle,
        "hyperparams": scenario.hyperparams_json,
        "steps": fit.losses.shape[0],
        "seconds": fit.seconds,
        "status": "diverged",
        "expected_failure": "",
        "metrics": [metric.as_dict() for metric in problem.table],
        **{name: finite_or_none(value) for name, value in metrics.items()},
        "epoch_loss": [finite_or_none(v) for v in epoch_values],
        "step_loss": [finite_or_none(v) for v in curve.tolist()],
        "step_loss_stride": stride,
    }
    record["status"] = checks.status(record)
    record["target_step"], record["target_seconds"] = checks.time_to_target(record, fit.steps_per_epoch)
    return record


def _train_one(prepared: Prepared, reuse_step_loss: bool | None = None) -> SeedFit:
    """One seed's run.

    ``reuse_step_loss`` (default: wherever it is exact) takes each epoch's
    full-data loss from the next step's loss instead of computing it again.
    """
    scenario = prepared.scenario
    full_batch = scenario.batch_size >= prepared.x.shape[0]
    if reuse_step_loss is None:
        # A train_eval optimizer's step loss is the training iterate's, not the evaluated one's.
        reuse_step_loss = (
            full_batch and not scenario.shuffle and not scenario.needs_closure and not scenario.train_eval
        )
    if reuse_step_loss and scenario.train_eval:
        raise ValueError(f"{scenario.id}: a train_eval optimizer's step loss is not its evaluated loss")
    if reuse_step_loss and not full_batch:
        raise ValueError(f"{scenario.id}: only a full batch's step loss is the full-data loss")
    return _train_full_batch(prepared) if reuse_step_loss else _train_batches(prepared)


def _train_batches(prepared: Prepared) -> SeedFit:
    scenario, model, optimizer = prepared.scenario, prepared.model, prepared.optimizer
    x, y = prepared.x, prepared.y
    device = x.device
    size, batch_size = x.shape[0], min(scenario.batch_size, x.shape[0])
    needs_closure, train_eval = scenario.needs_closure, scenario.train_eval
    create_graph, schedulers = scenario.create_graph, prepared.schedulers
    losses: list[torch.Tensor] = []
    epoch_loss: list[torch.Tensor] = []
    generator = torch.Generator(device=device).manual_seed(scenario.seed) if scenario.shuffle else None
    x_batches, y_batches = x.split(batch_size), y.split(batch_size)
    criterion = scenario.problem.loss

    start = time.perf_counter()
    if train_eval:
        optimizer.eval()  # type: ignore[attr-defined]  # check_modes saw it
    with torch.no_grad():
        epoch_loss.append(criterion(model(x), y))
    for _ in range(scenario.epochs):
        if generator is not None:
            order = torch.randperm(size, device=device, generator=generator)
            x_batches, y_batches = x[order].split(batch_size), y[order].split(batch_size)
        if train_eval:
            optimizer.train()  # type: ignore[attr-defined]
        for xb, yb in zip(x_batches, y_batches, strict=True):
            if needs_closure:

                def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
                    optimizer.zero_grad()
                    batch_loss = criterion(model(xb), yb)
                    backward(batch_loss, create_graph)
                    return batch_loss

                loss = optimizer.step(closure)
            else:
                optimizer.zero_grad()
                loss = criterion(model(xb), yb)
                backward(loss, create_graph)
                optimizer.step()
            for scheduler in schedulers:
                scheduler.step()
            losses.append(loss.detach())
        if train_eval:
            optimizer.eval()  # type: ignore[attr-defined]
        with torch.no_grad():
            full = criterion(model(x), y)
        epoch_loss.append(full)
        if not math.isfinite(full.item()):  # the one wait per epoch; .item() is the cheapest on a CPU
            break
    if create_graph:
        optimizer.zero_grad()  # the last gradients' graphs hold the parameters in a cycle
    return _finish(prepared, start, torch.stack(losses) if losses else None, torch.stack(epoch_loss))


def _train_full_batch(prepared: Prepared) -> SeedFit:
    """A full batch in data order: one step per epoch, and its loss is the epoch's full-data loss.

    Each step's loss is the full-data loss after the epoch before, the very
    computation ``_train_batches`` repeats, so it is not done twice: that halves
    the work per epoch where an epoch is a single step.
    """
    model, optimizer, x, y = prepared.model, prepared.optimizer, prepared.x, prepared.y
    criterion = prepared.scenario.problem.loss
    losses: list[torch.Tensor] = []

    start = time.perf_counter()
    for _ in range(prepared.scenario.epochs):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        losses.append(loss.detach())
        if not math.isfinite(loss.item()):
            break  # the epoch before ended non-finite: stop where the batched loop stops
        backward(loss, prepared.scenario.create_graph)
        optimizer.step()
        for scheduler in prepared.schedulers:
            scheduler.step()
    else:
        with torch.no_grad():
            losses.append(criterion(model(x), y))
    if prepared.scenario.create_graph:
        optimizer.zero_grad()  # the last gradients' graphs hold the parameters in a cycle
    epoch_loss = torch.stack(losses)
    return _finish(prepared, start, epoch_loss[:-1], epoch_loss)


def _finish(
    prepared: Prepared, start: float, losses: torch.Tensor | None, epoch_loss: torch.Tensor
) -> SeedFit:
    """Waits for the device, stops the clock and keeps what the record needs."""
    device = epoch_loss.device
    epoch_values = epoch_loss.tolist()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return SeedFit(
        scenario=prepared.scenario,
        seconds=seconds,
        epoch_values=epoch_values,
        losses=epoch_loss[:0] if losses is None else losses,
        model=lambda: prepared.model,
        optimum=prepared.optimum,
        target=prepared.target,
        steps_per_epoch=math.ceil(prepared.x.shape[0] / prepared.scenario.batch_size),
    )


def replica_fits(
    scenario: Scenario,
    stacked: Replicas,
    trace: replicas.Trace,
    optima: Sequence[Reference],
    targets: Sequence[tuple[float, ...]],
    first: int = 0,
) -> list[SeedFit]:
    """Each seed of ``scenario`` as one replica's outcome of a vectorised run, from row ``first`` on."""
    per_epoch = math.ceil(stacked.x.shape[1] / stacked.batch_size)
    seeds = []
    for index, single in enumerate(seed_scenarios(scenario)):
        row = first + index
        steps = min(trace.epochs_done[row] * per_epoch, trace.losses.shape[0])
        seeds.append(
            SeedFit(
                scenario=single,
                seconds=trace.seconds,
                epoch_values=trace.epoch_loss[row],
                losses=trace.losses[:steps, row],
                model=partial(replicas.model, stacked, row),
                optimum=optima[index],
                target=targets[index],
                steps_per_epoch=per_epoch,
            )
        )
    return seeds


def _fit_vectorised(ready: Vectorised) -> Fitted:
    trace = replicas.train(ready.replicas)
    seeds = replica_fits(ready.scenario, ready.replicas, trace, ready.optima, ready.targets)
    return Fitted(ready.scenario, seeds, trace.seconds, "vectorised")


def fit(ready: Ready) -> Fitted:
    """Trains what ``prepare`` built, once: the timed part of a benchmark round.

    The loop never waits for the device: each step's loss stays a tensor on the
    device (appended to a list, which costs a third of copying it into a
    preallocated tensor, and stacked once at the end), and batches are views of
    tensors already on the device.
    Once per epoch the full-data loss is computed and checked, which is the only
    synchronisation until the end; a NaN or infinite loss ends the run there with
    status ``diverged`` (in a vectorised run, once every replica has diverged).
    """
    if isinstance(ready, Prepared):
        one = _train_one(ready)
        return Fitted(ready.scenario, [one], one.seconds, "one")
    if isinstance(ready, Vectorised):
        return _fit_vectorised(ready)
    seeds = [_train_one(single) for single in ready.runs]
    return Fitted(ready.scenario, seeds, sum(seed.seconds for seed in seeds), "sequential")


def summarise(fitted: Fitted) -> Record:
    """The flat record of a fitted scenario: the first seed's fields, and the spread over seeds.

    Each seed's time to target (``checks.time_to_target``) is timed by its own training seconds: a
    vectorised run's, which all its seeds share, or that seed's own run's.
    """
    records = [_record(seed) for seed in fitted.seeds]
    scenario = fitted.scenario
    claim = (
        "proven" if scenario.proven and scenario.elementwise else "declared" if scenario.elementwise else ""
    )
    record = {
        **records[0],
        "seconds": fitted.seconds,
        "seed": scenario.seed,
        "seed_runs": fitted.how,
        "elementwise": claim,
    }
    table = scenario.problem.table
    record.update(spread.over_seeds(records, table))
    record.update(spread.over_seeds_to_target(records))
    record["status"] = checks.status(record)
    return {name: record[name] for name in fields(table)}  # the declared fields, in their order


def train(ready: Ready) -> Record:
    """Trains what ``prepare`` built, once, and returns its record: ``summarise(fit(ready))``."""
    return summarise(fit(ready))


def run(scenario: Scenario) -> Record:
    """Prepares and trains ``scenario`` once: fresh models, fresh optimizers, one record."""
    return train(prepare(scenario))
