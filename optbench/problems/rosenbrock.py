"""Rosenbrock's banana from the classic start (-1.2, 1): a curved, narrow valley with its floor at (1, 1).

``f(a, b) = (1 - a)**2 + 100 (b - a**2)**2`` has no data, so no batch-size axis: every step is the
full objective. Every seed starts at (-1.2, 1), so every seed is the same run. The reference is the
minimum (1, 1), where ``f`` is 0.
"""

from __future__ import annotations

import torch
from torch import nn

from optbench.problems.base import SUITE_ROUNDS, Metric, Problem, Reference

START = (-1.2, 1.0)
MINIMUM = (1.0, 1.0)


class Rosenbrock(nn.Module):
    """Two parameters, ``point`` = (a, b); the forward pass ignores its input and gives ``f(a, b)``."""

    def __init__(self) -> None:
        super().__init__()
        self.point = nn.Parameter(torch.tensor(START))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``f`` at the point, once per input row (the input's values are ignored)."""
        a, b = self.point[0], self.point[1]
        value = (1 - a) ** 2 + 100 * (b - a**2) ** 2
        return value.expand(x.shape[0], 1)


def rosenbrock(seed: int) -> Rosenbrock:
    """The model at the classic start; the seed changes nothing."""
    return Rosenbrock()


def mean_value(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The objective a model computes: the mean of its outputs (the target is ignored)."""
    return prediction.mean()


def minimum(x: torch.Tensor, y: torch.Tensor) -> Reference:
    """The known minimum: (1, 1), value 0."""
    return Reference(loss=0.0, params=MINIMUM)


ROSENBROCK = Problem(
    name="rosenbrock",
    data=None,
    model=rosenbrock,
    loss=mean_value,
    reference=minimum,
    metrics=(Metric("excess_loss", "excess value", bound=1e-3, tolerance=1e-3),),
    batch_sizes=(1,),
    epochs={1: 1000},
    rounds=SUITE_ROUNDS,
)
