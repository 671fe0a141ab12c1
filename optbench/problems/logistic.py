"""Logistic regression on two overlapping classes: convex, smooth, and with no closed form.

Two Gaussian classes in five dimensions whose means are 1.5 apart along one direction, 200 points
in all, so no plane separates them and the maximum-likelihood fit is finite. The model is
``nn.Linear(5, 1)`` giving a logit, the loss binary cross-entropy. The reference is Newton's method
in float64, run until the gradient's norm is under 1e-10.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from optbench.problems.base import SUITE_ROUNDS, Data, Metric, Problem, Reference, cached

FEATURES = 5
SAMPLES = 200
SEPARATION = 1.5
"""How far apart the two classes' means are, in standard deviations, along the first feature."""

TOLERANCE = 1e-10
"""Newton's method stops once the gradient of the mean loss is this small (its norm)."""


def logistic_data(seed: int) -> Data:
    """Half the points of each class, unit-variance Gaussians, their labels 0 and 1, from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(SAMPLES) % 2).to(torch.float64).unsqueeze(1)
    shift = torch.zeros(FEATURES, dtype=torch.float64)
    shift[0] = SEPARATION
    x = torch.randn(SAMPLES, FEATURES, generator=generator, dtype=torch.float64) + (labels - 0.5) * shift
    # A fixed rotation mixes the features, so the informative direction is no single coordinate.
    rotation, _ = torch.linalg.qr(
        torch.randn(FEATURES, FEATURES, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )
    return (x @ rotation).float(), labels.float()


def linear(seed: int) -> nn.Linear:
    """``nn.Linear(FEATURES, 1)`` with PyTorch's default initialisation, seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(FEATURES, 1)


def _loss_gradient_hessian(
    design: torch.Tensor, labels: torch.Tensor, theta: torch.Tensor
) -> tuple[float, torch.Tensor, torch.Tensor]:
    logits = design @ theta
    p = torch.sigmoid(logits)
    loss = float(F.binary_cross_entropy_with_logits(logits, labels))
    n = design.shape[0]
    gradient = design.T @ (p - labels) / n
    hessian = (design.T * (p * (1 - p))) @ design / n
    return loss, gradient, hessian


@cached
def newton(x: torch.Tensor, y: torch.Tensor) -> Reference:
    """The maximum-likelihood fit by Newton's method in float64, to a gradient norm under 1e-10.

    Parameters in ``nn.Linear``'s order: the weights, then the bias.

    Raises:
        RuntimeError: Newton's method did not get there in 100 steps (separable data has no finite fit).
    """
    xs = x.detach().to("cpu", torch.float64)
    labels = y.detach().to("cpu", torch.float64).reshape(-1)
    design = torch.cat([xs, torch.ones(xs.shape[0], 1, dtype=torch.float64)], dim=1)
    theta = torch.zeros(design.shape[1], dtype=torch.float64)
    for _ in range(100):
        loss, gradient, hessian = _loss_gradient_hessian(design, labels, theta)
        if float(gradient.norm()) < TOLERANCE:
            break
        step = torch.linalg.solve(hessian, gradient)
        # Halve the step until the loss does not rise: Newton's pure step can overshoot far from the fit.
        scale = 1.0
        while scale > 1e-8:
            trial = theta - scale * step
            if float(F.binary_cross_entropy_with_logits(design @ trial, labels)) <= loss:
                break
            scale /= 2
        theta = theta - scale * step
    else:
        raise RuntimeError("logistic reference: Newton's method did not converge in 100 steps")
    loss = float(F.binary_cross_entropy_with_logits(design @ theta, labels))
    return Reference(loss=loss, params=tuple(theta.tolist()))


LOGISTIC = Problem(
    name="logistic",
    data=logistic_data,
    model=linear,
    loss=F.binary_cross_entropy_with_logits,
    reference=newton,
    metrics=(Metric("excess_loss", "excess cross-entropy", bound=0.002, tolerance=0.001),),
    batch_sizes=(10,),
    epochs={10: 20},
    rounds=SUITE_ROUNDS,
)
