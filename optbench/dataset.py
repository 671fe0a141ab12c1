"""The tutorial's noisy line as a torch ``Dataset``, and its least-squares fit."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

TUTORIAL_SIZE = 100
"""Points in the tutorial's data set, so batch size 100 is full batch."""

TUTORIAL_SLOPE, TUTORIAL_INTERCEPT = -5.0, 1.0
"""The tutorial's true line, ``y = -5x + 1``."""


class LineDataset(Dataset):
    """Points on ``y = slope * x + intercept`` with Gaussian noise.

    The defaults are the tutorial's data: ``x = arange(-5, 5, 0.1)`` as a column
    (100 points) and ``y = -5x + 1 + 0.4 * N(0, 1)``. The noise comes from a
    private generator seeded with ``seed``, so building a dataset never touches
    torch's global random state.

    Args:
        seed: seed of the noise.
        slope: slope of the true line.
        intercept: intercept of the true line.
        noise: standard deviation of the noise added to ``y``.
        size: number of points; ``x`` steps by ``step`` from ``start``.
        start: first ``x``.
        step: distance between consecutive ``x``.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        slope: float = TUTORIAL_SLOPE,
        intercept: float = TUTORIAL_INTERCEPT,
        noise: float = 0.4,
        size: int = TUTORIAL_SIZE,
        start: float = -5.0,
        step: float = 0.1,
    ) -> None:
        if size < 1:
            raise ValueError(f"LineDataset: size must be at least 1, got {size}")
        if noise < 0:
            raise ValueError(f"LineDataset: noise must be non-negative, got {noise}")
        self.seed = seed
        self.slope = slope
        self.intercept = intercept
        self.noise = noise
        # Ending half a step past the last point gives exactly `size` points for
        # any step (a float end can round to one point more), and the same values
        # as the tutorial's arange(-5, 5, 0.1).
        self.x = torch.arange(start, start + (size - 0.5) * step, step).view(-1, 1)
        generator = torch.Generator().manual_seed(seed)
        self.func = slope * self.x + intercept
        self.y = self.func + noise * torch.randn(self.x.shape, generator=generator)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass(frozen=True)
class LeastSquares:
    """The closed-form best line through a set of points, and its MSE."""

    slope: float
    intercept: float
    mse: float


def least_squares(x: torch.Tensor, y: torch.Tensor) -> LeastSquares:
    """Fits ``y ~ slope * x + intercept`` exactly, in float64.

    Args:
        x: inputs, shape ``(n, 1)`` or ``(n,)``.
        y: targets, same number of points.

    Returns:
        The optimum that no optimizer can beat on this data.
    """
    xs = x.detach().reshape(-1).to("cpu", torch.float64)
    ys = y.detach().reshape(-1).to("cpu", torch.float64)
    # The centred normal equations: exact for one input, and deterministic to the
    # last bit (LAPACK's lstsq was not, from one call to the next).
    dx, dy = xs - xs.mean(), ys - ys.mean()
    spread = dx.square().sum()
    slope = (dx * dy).sum() / spread if spread > 0 else torch.zeros((), dtype=torch.float64)
    intercept = ys.mean() - slope * xs.mean()
    return LeastSquares(
        slope=float(slope),
        intercept=float(intercept),
        mse=float((slope * xs + intercept - ys).square().mean()),
    )


def as_tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Gathers a map-style dataset of ``(x, y)`` pairs into two column tensors.

    ``LineDataset`` hands over its tensors directly; any other dataset is read
    item by item once, before training, so the training loop always slices
    tensors instead of collating single samples.

    Raises:
        TypeError: when the dataset is empty or its items are not ``(x, y)`` pairs
            of numbers or one-element tensors.
    """
    if isinstance(dataset, LineDataset):
        return dataset.x, dataset.y
    try:
        size = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"dataset {type(dataset).__name__} has no len(); pass a map-style Dataset of (x, y) pairs"
        ) from None
    if size == 0:
        raise TypeError(f"dataset {type(dataset).__name__} is empty; it needs (x, y) pairs")
    xs, ys = [], []
    for index in range(size):
        item = dataset[index]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(
                f"dataset {type(dataset).__name__} item {index} is {type(item).__name__}, not an (x, y) pair"
            )
        x, y = (torch.as_tensor(value, dtype=torch.float32).reshape(-1) for value in item)
        if x.numel() != 1 or y.numel() != 1:
            raise TypeError(
                f"dataset {type(dataset).__name__} item {index} has x of {x.numel()} and "
                f"y of {y.numel()} values; optbench fits one input to one output"
            )
        xs.append(x)
        ys.append(y)
    return torch.cat(xs).view(-1, 1), torch.cat(ys).view(-1, 1)
