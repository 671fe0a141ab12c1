"""Trains one scenario and returns a flat record: pure, silent, and never asserting."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from optbench import checks, replicas, spread
from optbench.dataset import LeastSquares, as_tensors, least_squares
from optbench.record import Record, SeedRuns, finite_or_none
from optbench.replicas import Replicas
from optbench.scenario import OptimizerLike, Scenario

MAX_CURVE_POINTS = 200
"""The per-step loss curve is averaged down to at most this many points."""


class StaleOptimizerError(RuntimeError):
    """The optimizer does not hold exactly the parameters of the model it should train."""


@dataclass
class Prepared:
    """A fresh model and optimizer with the data on the device: one run, ready to train."""

    scenario: Scenario
    model: nn.Module
    optimizer: OptimizerLike
    x: torch.Tensor
    y: torch.Tensor
    optimum: LeastSquares
    target_slope: float
    target_intercept: float


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


def _dataset(scenario: Scenario) -> Dataset:
    source = scenario.dataset
    return source if isinstance(source, Dataset) else source(scenario.seed)


def _targets(dataset: Dataset, optimum: LeastSquares) -> tuple[float, float]:
    slope = getattr(dataset, "slope", optimum.slope)
    return float(slope), float(getattr(dataset, "intercept", optimum.intercept))


def _data(scenario: Scenario, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The data in the scenario's dtype: the points the model sees, and the optimum is fitted to."""
    x, y = as_tensors(dataset)
    return x.to(scenario.torch_dtype), y.to(scenario.torch_dtype)


def _model(scenario: Scenario, seed: int, device: torch.device) -> nn.Module:
    return scenario.model(2 * seed + 1).to(device=device, dtype=scenario.torch_dtype)


def _prepare_one(scenario: Scenario) -> Prepared:
    dataset = _dataset(scenario)
    x, y = _data(scenario, dataset)
    optimum = least_squares(x, y)
    device = torch.device(scenario.device)
    model = _model(scenario, scenario.seed, device)
    optimizer = scenario.optimizer(model.parameters())
    check_bound(optimizer, list(model.parameters()), scenario.id)
    target_slope, target_intercept = _targets(dataset, optimum)
    return Prepared(
        scenario=scenario,
        model=model,
        optimizer=optimizer,
        x=x.to(device),
        y=y.to(device),
        optimum=optimum,
        target_slope=target_slope,
        target_intercept=target_intercept,
    )


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
    optima: tuple[LeastSquares, ...]
    targets: tuple[float, float]


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
        elementwise=scenario.elementwise, needs_closure=scenario.needs_closure, dtype=scenario.dtype
    ):
        datasets = [_dataset(single) for single in singles]
        data = [_data(scenario, dataset) for dataset in datasets]
        optima = tuple(least_squares(x, y) for x, y in data)
        device = torch.device(scenario.device)
        try:
            stacked = replicas.prepare(
                [_model(scenario, single.seed, device) for single in singles],
                data,
                scenario.optimizer,
                seeds=[single.seed for single in singles],
                batch_size=scenario.batch_size,
                epochs=scenario.epochs,
                shuffle=scenario.shuffle,
                device=device,
            )
        except replicas.NotVectorisableError:
            pass  # the same results, one seed after another
        else:
            check_bound(stacked.optimizer, stacked.params, scenario.id)
            return Vectorised(scenario, stacked, optima, _targets(datasets[0], optima[0]))
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


def _line(model: nn.Module) -> tuple[float, float]:
    """A one-in, one-out model's values at x = 0 and x = 1."""
    parameter = next(model.parameters())
    probe = torch.tensor([[0.0], [1.0]], device=parameter.device, dtype=parameter.dtype)
    with torch.no_grad():
        at0, at1 = model(probe).reshape(-1).tolist()
    return at0, at1


@dataclass
class SeedFit:
    """What one seed's training left, on the host: the record is built from it, untimed."""

    scenario: Scenario
    """The one-seed scenario of this seed."""
    seconds: float
    epoch_values: list[float]
    losses: torch.Tensor
    """Every step's loss (on the device for a one-model run)."""
    line: tuple[float, float]
    """The fitted model's value at x = 0 and at x = 1."""
    optimum: LeastSquares
    targets: tuple[float, float]


@dataclass
class Fitted:
    """What ``fit`` returns: each seed's outcome, the time they took, and how they ran."""

    scenario: Scenario
    seeds: list[SeedFit]
    seconds: float
    how: SeedRuns


def _record(fit: SeedFit) -> dict[str, Any]:
    """One seed's fields of the record, with its status."""
    scenario, (at0, at1), epoch_values = fit.scenario, fit.line, fit.epoch_values
    curve, stride = _downsample(fit.losses, MAX_CURVE_POINTS)
    record: dict[str, Any] = {
        "id": scenario.id,
        "optimizer": scenario.name,
        "batch_size": scenario.batch_size,
        "device": scenario.device,
        "epochs": scenario.epochs,
        "seed": scenario.seed,
        "dtype": scenario.dtype,
        "shuffle": scenario.shuffle,
        "hyperparams": scenario.hyperparams_json,
        "steps": fit.losses.shape[0],
        "status": "diverged",
        "seconds": fit.seconds,
        "final_mse": finite_or_none(epoch_values[-1]),
        "slope": finite_or_none(at1 - at0),
        "intercept": finite_or_none(at0),
        "optimum_mse": fit.optimum.mse,
        "optimum_slope": fit.optimum.slope,
        "optimum_intercept": fit.optimum.intercept,
        "target_slope": fit.targets[0],
        "target_intercept": fit.targets[1],
        "epoch_mse": [finite_or_none(v) for v in epoch_values],
        "step_loss": [finite_or_none(v) for v in curve.tolist()],
        "step_loss_stride": stride,
    }
    record["status"] = checks.status(record)
    return record


def _train_one(prepared: Prepared, reuse_step_loss: bool | None = None) -> SeedFit:
    """One seed's run.

    ``reuse_step_loss`` (default: wherever it is exact) takes each epoch's
    full-data MSE from the next step's loss instead of computing it again.
    """
    scenario = prepared.scenario
    full_batch = scenario.batch_size >= prepared.x.shape[0]
    if reuse_step_loss is None:
        reuse_step_loss = full_batch and not scenario.shuffle and not scenario.needs_closure
    if reuse_step_loss and not full_batch:
        raise ValueError(f"{scenario.id}: only a full batch's step loss is the full-data MSE")
    return _train_full_batch(prepared) if reuse_step_loss else _train_batches(prepared)


def _train_batches(prepared: Prepared) -> SeedFit:
    scenario, model, optimizer = prepared.scenario, prepared.model, prepared.optimizer
    x, y = prepared.x, prepared.y
    device = x.device
    size, batch_size = x.shape[0], min(scenario.batch_size, x.shape[0])
    needs_closure = scenario.needs_closure
    losses: list[torch.Tensor] = []
    epoch_mse: list[torch.Tensor] = []
    generator = torch.Generator(device=device).manual_seed(scenario.seed) if scenario.shuffle else None
    x_batches, y_batches = x.split(batch_size), y.split(batch_size)

    start = time.perf_counter()
    with torch.no_grad():
        epoch_mse.append(F.mse_loss(model(x), y))
    for _ in range(scenario.epochs):
        if generator is not None:
            order = torch.randperm(size, device=device, generator=generator)
            x_batches, y_batches = x[order].split(batch_size), y[order].split(batch_size)
        for xb, yb in zip(x_batches, y_batches, strict=True):
            if needs_closure:

                def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
                    optimizer.zero_grad()
                    batch_loss = F.mse_loss(model(xb), yb)
                    batch_loss.backward()
                    return batch_loss

                loss = optimizer.step(closure)
            else:
                optimizer.zero_grad()
                loss = F.mse_loss(model(xb), yb)
                loss.backward()
                optimizer.step()
            losses.append(loss.detach())
        with torch.no_grad():
            mse = F.mse_loss(model(x), y)
        epoch_mse.append(mse)
        if not math.isfinite(mse.item()):  # the one wait per epoch; .item() is the cheapest on a CPU
            break
    return _finish(prepared, start, torch.stack(losses) if losses else None, torch.stack(epoch_mse))


def _train_full_batch(prepared: Prepared) -> SeedFit:
    """A full batch in data order: one step per epoch, and its loss is the epoch's MSE.

    Each step's loss is the full-data MSE after the epoch before, the very
    computation ``_train_batches`` repeats, so it is not done twice: that halves
    the work per epoch where an epoch is a single step.
    """
    model, optimizer, x, y = prepared.model, prepared.optimizer, prepared.x, prepared.y
    losses: list[torch.Tensor] = []

    start = time.perf_counter()
    for _ in range(prepared.scenario.epochs):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        losses.append(loss.detach())
        if not math.isfinite(loss.item()):
            break  # the epoch before ended non-finite: stop where the batched loop stops
        loss.backward()
        optimizer.step()
    else:
        with torch.no_grad():
            losses.append(F.mse_loss(model(x), y))
    epoch_mse = torch.stack(losses)
    return _finish(prepared, start, epoch_mse[:-1], epoch_mse)


def _finish(
    prepared: Prepared, start: float, losses: torch.Tensor | None, epoch_mse: torch.Tensor
) -> SeedFit:
    """Waits for the device, stops the clock and keeps what the record needs."""
    device = epoch_mse.device
    epoch_values = epoch_mse.tolist()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return SeedFit(
        scenario=prepared.scenario,
        seconds=seconds,
        epoch_values=epoch_values,
        losses=epoch_mse[:0] if losses is None else losses,
        line=_line(prepared.model),
        optimum=prepared.optimum,
        targets=(prepared.target_slope, prepared.target_intercept),
    )


def _fit_vectorised(ready: Vectorised) -> Fitted:
    trace = replicas.train(ready.replicas)
    per_epoch = math.ceil(ready.replicas.x.shape[1] / ready.replicas.batch_size)
    seeds = []
    for index, single in enumerate(seed_scenarios(ready.scenario)):
        steps = min(trace.epochs_done[index] * per_epoch, trace.losses.shape[0])
        seeds.append(
            SeedFit(
                scenario=single,
                seconds=trace.seconds,
                epoch_values=trace.epoch_mse[index],
                losses=trace.losses[:steps, index],
                line=trace.lines[index],
                optimum=ready.optima[index],
                targets=ready.targets,
            )
        )
    return Fitted(ready.scenario, seeds, trace.seconds, "vectorised")


def fit(ready: Ready) -> Fitted:
    """Trains what ``prepare`` built, once: the timed part of a benchmark round.

    The loop never waits for the device: each step's loss stays a tensor on the
    device (appended to a list, which costs a third of copying it into a
    preallocated tensor, and stacked once at the end), and batches are views of
    tensors already on the device.
    Once per epoch the full-data MSE is computed and checked, which is the only
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
    """The flat record of a fitted scenario: the first seed's fields, and the spread over seeds."""
    records = [_record(seed) for seed in fitted.seeds]
    record = {**records[0], "seconds": fitted.seconds, "seed": fitted.scenario.seed, "seed_runs": fitted.how}
    record.update(spread.over_seeds(records))
    record["status"] = checks.status(record)
    return record  # type: ignore[return-value]


def train(ready: Ready) -> Record:
    """Trains what ``prepare`` built, once, and returns its record: ``summarise(fit(ready))``."""
    return summarise(fit(ready))


def run(scenario: Scenario) -> Record:
    """Prepares and trains ``scenario`` once: fresh models, fresh optimizers, one record."""
    return train(prepare(scenario))
