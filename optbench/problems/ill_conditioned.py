"""Least squares whose features span three decades of scale: what an ill-conditioned fit asks of a step.

Ten features, the j-th a standard normal, standardised over the samples and scaled by
``10**(-3 j / 9)`` (1 down to 0.001), so the condition number of the centred XᵀX is above 1e6 on
every seed (its diagonal alone spans 1e6). Each feature contributes alike to the target (its true weight
is the inverse of its scale, with alternating signs), plus the line's noise (0.4 N(0, 1)). A step
that is not scaled per parameter moves the smallest feature's weight a million times slower than the
largest's, and the excess loss it leaves is that feature's whole share of the signal. The reference
is the exact least-squares fit, in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from optbench.problems.base import SUITE_ROUNDS, Data, Metric, Problem, Reference

FEATURES = 10
SAMPLES = 100
DECADES = 3.0
NOISE = 0.4

SCALES = tuple(10.0 ** (-DECADES * j / (FEATURES - 1)) for j in range(FEATURES))
"""Each feature's scale, 1 down to ``10**-DECADES``."""

WEIGHTS = tuple((-1.0) ** j / scale for j, scale in enumerate(SCALES))
"""The true weights: each feature contributes a standard normal's worth to the target."""

INTERCEPT = 1.0


def ill_conditioned_data(seed: int) -> Data:
    """``SAMPLES`` rows of scaled normal features and their noisy linear targets, drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(SAMPLES, FEATURES, generator=generator, dtype=torch.float64)
    # Each column exactly standardised: the centred XᵀX's diagonal then spans exactly the scales'
    # squared ratio (1e6), and its eigenvalues span at least that.
    z = (z - z.mean(dim=0)) / z.std(dim=0)
    x = z * torch.tensor(SCALES, dtype=torch.float64)
    noise = NOISE * torch.randn(SAMPLES, 1, generator=generator, dtype=torch.float64)
    y = x @ torch.tensor(WEIGHTS, dtype=torch.float64).unsqueeze(1) + INTERCEPT + noise
    return x.float(), y.float()


def linear(seed: int) -> nn.Linear:
    """``nn.Linear(FEATURES, 1)`` with PyTorch's default initialisation, seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(FEATURES, 1)


def least_squares(x: torch.Tensor, y: torch.Tensor) -> Reference:
    """The exact least-squares fit with an intercept, in float64 (Householder QR of the centred data).

    Parameters in ``nn.Linear``'s order: the weights, then the bias.
    """
    xs = x.detach().to("cpu", torch.float64)
    ys = y.detach().to("cpu", torch.float64).reshape(-1, 1)
    mean_x, mean_y = xs.mean(dim=0), ys.mean()
    # Centring removes the intercept; QR solves without squaring the condition number.
    q, r = torch.linalg.qr(xs - mean_x)
    weights = torch.linalg.solve_triangular(r, q.T @ (ys - mean_y), upper=True).reshape(-1)
    bias = mean_y - mean_x @ weights
    mse = float((xs @ weights + bias - ys.reshape(-1)).square().mean())
    return Reference(loss=mse, params=(*weights.tolist(), float(bias)))


ILL_CONDITIONED = Problem(
    name="ill_conditioned",
    data=ill_conditioned_data,
    model=linear,
    loss=F.mse_loss,
    reference=least_squares,
    metrics=(Metric("excess_loss", "excess MSE", bound=0.05, tolerance=0.01),),
    batch_sizes=(SAMPLES,),
    epochs={SAMPLES: 500},
    rounds=SUITE_ROUNDS,
)
