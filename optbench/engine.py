"""Trains one scenario and returns a flat record: pure, silent, and never asserting."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from optbench import checks
from optbench.dataset import LeastSquares, as_tensors, least_squares
from optbench.record import Record, finite_or_none
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
    losses: torch.Tensor
    """One element per step, filled by ``train`` without waiting for the device."""
    slots: tuple[torch.Tensor, ...]
    """``losses`` as one view per step: ``copy_`` into a view costs less per step than
    indexing, and making the views is setup, not training."""


def check_bound(optimizer: OptimizerLike, model: nn.Module, scenario_id: str) -> None:
    """Raises ``StaleOptimizerError`` unless ``optimizer`` holds exactly ``model``'s parameters.

    This is the tutorial's bug made loud: its second loop stepped an optimizer
    that was built for the first model, so the second model never moved.
    """
    held = [p for group in optimizer.param_groups for p in group["params"]]
    own = list(model.parameters())
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


def prepare(scenario: Scenario) -> Prepared:
    """Builds the data, a fresh model and a fresh optimizer bound to it (not timed).

    The model is seeded with ``2 * seed + 1`` and the data with ``seed``, so the
    initialisation and the noise are independent draws.

    Raises:
        StaleOptimizerError: the factory returned an optimizer that does not hold
            exactly this model's parameters.
    """
    dataset = _dataset(scenario)
    x, y = as_tensors(dataset)
    optimum = least_squares(x, y)
    device = torch.device(scenario.device)
    steps = scenario.epochs * math.ceil(x.shape[0] / min(scenario.batch_size, x.shape[0]))
    losses = torch.full((steps,), math.nan, device=device)
    model = scenario.model(2 * scenario.seed + 1).to(device)
    optimizer = scenario.optimizer(model.parameters())
    check_bound(optimizer, model, scenario.id)
    return Prepared(
        scenario=scenario,
        model=model,
        optimizer=optimizer,
        x=x.to(device),
        y=y.to(device),
        optimum=optimum,
        target_slope=float(getattr(dataset, "slope", optimum.slope)),
        target_intercept=float(getattr(dataset, "intercept", optimum.intercept)),
        losses=losses,
        slots=losses.unbind(),
    )


def _downsample(losses: torch.Tensor, max_points: int) -> tuple[torch.Tensor, int]:
    """Means over consecutive windows, so at most ``max_points`` remain."""
    stride = max(1, math.ceil(losses.numel() / max_points))
    padded = F.pad(losses, (0, (-losses.numel()) % stride), value=math.nan)
    return padded.view(-1, stride).nanmean(dim=1), stride


def _line(model: nn.Module) -> tuple[float | None, float | None]:
    """Slope and intercept of a one-in, one-out affine model, read off two points."""
    parameter = next(model.parameters())
    probe = torch.tensor([[0.0], [1.0]], device=parameter.device, dtype=parameter.dtype)
    with torch.no_grad():
        at0, at1 = model(probe).reshape(-1).tolist()
    return finite_or_none(at1 - at0), finite_or_none(at0)


def train(prepared: Prepared) -> Record:
    """Trains ``prepared`` once; the timed part of a benchmark round.

    The loop never waits for the device: each step's loss is copied into its slot
    of a tensor preallocated by ``prepare``, and batches are views of tensors
    already on the device.
    Once per epoch the full-data MSE is computed and checked, which is the only
    synchronisation until the end; a NaN or infinite loss ends the run there with
    status ``diverged``.
    """
    scenario, model, optimizer = prepared.scenario, prepared.model, prepared.optimizer
    x, y = prepared.x, prepared.y
    device = x.device
    size, batch_size = x.shape[0], min(scenario.batch_size, x.shape[0])
    losses, slots, needs_closure = prepared.losses, prepared.slots, scenario.needs_closure
    epoch_mse = torch.empty(scenario.epochs + 1, device=device)
    generator = torch.Generator(device=device).manual_seed(scenario.seed) if scenario.shuffle else None
    x_batches, y_batches = x.split(batch_size), y.split(batch_size)

    start = time.perf_counter()
    with torch.no_grad():
        epoch_mse[0] = F.mse_loss(model(x), y)
    step = 0
    epochs_done = 0
    for epoch in range(1, scenario.epochs + 1):
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
            slots[step].copy_(loss.detach())
            step += 1
        with torch.no_grad():
            epoch_mse[epoch] = F.mse_loss(model(x), y)
        epochs_done = epoch
        if not torch.isfinite(epoch_mse[epoch]):
            break
    curve, stride = _downsample(losses[:step], MAX_CURVE_POINTS)
    epoch_values = epoch_mse[: epochs_done + 1].tolist()
    curve_values = curve.tolist()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start

    slope, intercept = _line(model)
    final_mse = finite_or_none(epoch_values[-1])
    record: Record = {
        "id": scenario.id,
        "optimizer": scenario.name,
        "batch_size": scenario.batch_size,
        "device": scenario.device,
        "epochs": scenario.epochs,
        "seed": scenario.seed,
        "shuffle": scenario.shuffle,
        "hyperparams": scenario.hyperparams_json,
        "steps": step,
        "status": "diverged",
        "seconds": seconds,
        "final_mse": final_mse,
        "slope": slope,
        "intercept": intercept,
        "optimum_mse": prepared.optimum.mse,
        "optimum_slope": prepared.optimum.slope,
        "optimum_intercept": prepared.optimum.intercept,
        "target_slope": prepared.target_slope,
        "target_intercept": prepared.target_intercept,
        "epoch_mse": [finite_or_none(v) for v in epoch_values],
        "step_loss": [finite_or_none(v) for v in curve_values],
        "step_loss_stride": stride,
    }
    record["status"] = checks.status(record)
    return record


def run(scenario: Scenario) -> Record:
    """Prepares and trains ``scenario`` once: a fresh model, a fresh optimizer, one record."""
    return train(prepare(scenario))
