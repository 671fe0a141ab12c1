"""The noisy quadratic model of Zhang et al. (2019), "Which algorithmic choices matter at which batch sizes?".

A quadratic in 100 dimensions whose curvatures fall as ``1/i`` (i = 1..100), minimised at 0, seen
through noisy samples: sample k's loss is ``sum_i h_i (theta_i**2 / 2 - xi_ki theta_i)`` with
``xi_ki ~ N(0, NOISE**2 / h_i)``, centred over the samples. Its gradient is the true one plus noise
whose variance is ``NOISE**2 h_i`` per sample, so proportional to the curvature, and a batch of ``B``
samples divides it by about ``B`` (by ``B (N - 1) / (N - B)`` exactly, drawn without replacement from
the ``N`` samples). Over the whole data the noise cancels exactly, so the full-data loss is
``sum_i h_i theta_i**2 / 2``: the reference is 0, at 0 (computed from the data in float64, which
also absorbs the float32 rounding of the centring).

Each sample's input carries the curvatures and its noise, ``(h, h * xi)``, so the model is one
parameter vector and stays a plain module that any device and ``vmap`` take.
"""

from __future__ import annotations

import torch
from torch import nn

from optbench.problems.base import SUITE_ROUNDS, Data, Metric, Problem, Reference
from optbench.problems.rosenbrock import mean_value

DIMENSIONS = 100
SAMPLES = 200
NOISE = 1.0

CURVATURES = tuple(1.0 / i for i in range(1, DIMENSIONS + 1))


def noisy_quadratic_data(seed: int) -> Data:
    """``SAMPLES`` inputs of shape ``(2, DIMENSIONS)``, ``(h, h * xi)``, and zero targets, from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    h = torch.tensor(CURVATURES, dtype=torch.float64)
    xi = torch.randn(SAMPLES, DIMENSIONS, generator=generator, dtype=torch.float64) * NOISE / h.sqrt()
    xi = xi - xi.mean(dim=0)  # the noise cancels over the data: the full loss is the true quadratic
    x = torch.stack([h.expand(SAMPLES, DIMENSIONS), h * xi], dim=1)
    return x.float(), torch.zeros(SAMPLES, 1)


class NoisyQuadratic(nn.Module):
    """One parameter vector ``theta``; each sample's loss is ``sum(h * theta**2 / 2 - h * xi * theta)``."""

    def __init__(self, start: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(start)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each sample's loss at ``theta``: ``x[:, 0]`` holds the curvatures, ``x[:, 1]`` ``h * xi``."""
        curvature, pull = x[:, 0], x[:, 1]
        return (curvature * self.theta.square() / 2 - pull * self.theta).sum(dim=1, keepdim=True)


def noisy_quadratic(seed: int) -> NoisyQuadratic:
    """The model, its start drawn from ``seed``: ``N(0, 1)`` in every dimension."""
    generator = torch.Generator().manual_seed(seed)
    return NoisyQuadratic(torch.randn(DIMENSIONS, generator=generator))


def quadratic_minimum(x: torch.Tensor, y: torch.Tensor) -> Reference:
    """The minimum of the full-data loss, in float64: at ``mean(h xi) / h``, which is 0 up to rounding."""
    xs = x.detach().to("cpu", torch.float64)
    curvature, pull = xs[:, 0].mean(dim=0), xs[:, 1].mean(dim=0)
    theta = pull / curvature
    loss = float((curvature * theta.square() / 2 - pull * theta).sum())
    return Reference(loss=loss, params=tuple(theta.tolist()))


NOISY_QUADRATIC = Problem(
    name="noisy_quadratic",
    data=noisy_quadratic_data,
    model=noisy_quadratic,
    loss=mean_value,
    reference=quadratic_minimum,
    metrics=(Metric("excess_loss", "excess loss", bound=0.05, tolerance=0.01),),
    batch_sizes=(10, 100),
    epochs={10: 20, 100: 100},
    rounds=SUITE_ROUNDS,
)
