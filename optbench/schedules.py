"""Learning-rate schedules as data: each a factor of the learning rate by step, applied by torch.

A scenario's schedule multiplies every parameter group's learning rate by ``factor(step, steps)``
through ``torch.optim.lr_scheduler.LambdaLR``, stepped once after every optimizer step, where
``steps`` is the run's number of optimizer steps (epochs x steps per epoch). ``constant`` attaches
no scheduler at all, so a run without a schedule is the run it always was, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import MappingProxyType
from typing import TYPE_CHECKING

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

if TYPE_CHECKING:  # the scenario checks its schedule against this table
    from optbench.scenario import OptimizerLike

CONSTANT = "constant"
"""The default schedule: the learning rate as the optimizer was built with it, throughout."""

WARMUP_FRACTION = 0.1
"""The share of a run's steps that ``warmup-cosine`` warms up over (at least one step)."""

Factor = Callable[[int, int], float]
"""``factor(step, steps)``: the multiple of the learning rate at ``step`` (from 0) of ``steps``."""


def warmup_steps(steps: int) -> int:
    """The warm-up of ``warmup-cosine`` over ``steps`` steps: ``WARMUP_FRACTION`` of them, at least 1."""
    return max(1, round(WARMUP_FRACTION * steps))


def _cosine(step: int, steps: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


def _linear(step: int, steps: int) -> float:
    return max(0.0, 1 - step / steps)


def _warmup_cosine(step: int, steps: int) -> float:
    warm = warmup_steps(steps)
    if step < warm:
        return (step + 1) / (warm + 1)
    rest = max(1, steps - warm)
    return _cosine(step - warm, rest)


SCHEDULES: MappingProxyType[str, Factor | None] = MappingProxyType(
    {
        CONSTANT: None,
        "cosine": _cosine,
        "warmup-cosine": _warmup_cosine,
        "linear": _linear,
    }
)
"""Every schedule by name, with its factor of the learning rate (``None``: no scheduler):

- ``constant``: 1 throughout;
- ``cosine``: ``(1 + cos(pi t / T)) / 2``, from 1 down to 0 at the last step (``T`` steps);
- ``warmup-cosine``: ``(t + 1) / (W + 1)`` over the first ``W = WARMUP_FRACTION x T`` steps, then
  cosine from 1 to 0 over the rest;
- ``linear``: ``1 - t / T``, from 1 down to 0.
"""


class ScheduleError(TypeError):
    """A schedule that cannot drive this optimizer (it is not a ``torch.optim.Optimizer``)."""


def attach(schedule: str, optimizer: OptimizerLike, steps: int, scenario_id: str) -> tuple[LRScheduler, ...]:
    """The schedulers that apply ``schedule`` over ``steps`` steps: none for ``constant``.

    An optimizer that holds several (``optimizers``, as Muon and its companion do) gets one each.

    Raises:
        ValueError: an unknown schedule.
        ScheduleError: the optimizer, or one it holds, is not a ``torch.optim.Optimizer``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"{scenario_id}: unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    factor = SCHEDULES[schedule]
    if factor is None:
        return ()
    held = getattr(optimizer, "optimizers", None)
    parts = list(held) if isinstance(held, (list, tuple)) else [optimizer]
    for part in parts:
        if not isinstance(part, torch.optim.Optimizer):
            raise ScheduleError(
                f"{scenario_id}: the {schedule} schedule needs a torch.optim.Optimizer, and "
                f"{type(part).__name__} is not one; run it with the constant schedule"
            )
    total = max(1, steps)
    return tuple(LambdaLR(part, lambda step: factor(step, total)) for part in parts)  # type: ignore[arg-type]
