"""The tutorial's problem: ``nn.Linear(1, 1)`` fitting the noisy line ``y = -5x + 1``, under MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from optbench.dataset import TUTORIAL_INTERCEPT, TUTORIAL_SIZE, TUTORIAL_SLOPE, LineDataset, least_squares
from optbench.model import linear
from optbench.problems.base import Data, Problem, Reference


def line_data(seed: int) -> Data:
    """The tutorial's 100 points, with the noise drawn from ``seed``."""
    dataset = LineDataset(seed)
    return dataset.x, dataset.y


def line_reference(x: torch.Tensor, y: torch.Tensor) -> Reference:
    """The least-squares line through the points: exact, in float64; parameters (slope, intercept)."""
    fit = least_squares(x, y)
    return Reference(loss=fit.mse, params=(fit.slope, fit.intercept))


def line_measure(model: torch.nn.Module) -> dict[str, float]:
    """The line a one-in, one-out model draws: its slope and intercept, from its values at x = 0 and 1."""
    parameter = next(model.parameters())
    probe = torch.tensor([[0.0], [1.0]], device=parameter.device, dtype=parameter.dtype)
    with torch.no_grad():
        at0, at1 = model(probe).reshape(-1).tolist()
    return {"slope": at1 - at0, "intercept": at0}


LINE = Problem(
    name="line",
    data=line_data,
    model=linear,
    loss=F.mse_loss,
    reference=line_reference,
    measure=line_measure,
    batch_sizes=(1, 10, 50, TUTORIAL_SIZE),
    truth=(TUTORIAL_SLOPE, TUTORIAL_INTERCEPT),
    # Large batches take few steps per epoch, so they get more epochs.
    epochs={1: 20, 10: 20, 50: 100, TUTORIAL_SIZE: 100},
    default_epochs=20,
)
