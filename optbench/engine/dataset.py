"""Any map-style dataset of ``(x, y)`` pairs as two tensors of rows, for a scenario's own ``dataset``."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


def as_tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Gathers a map-style dataset of ``(x, y)`` pairs into two tensors, a row per sample.

    A dataset that keeps its samples as tensors ``x`` and ``y`` of one row each (``LineDataset``)
    hands them over; any other is read item by item once, before training, so the training loop
    always slices tensors instead of collating single samples. Each item's ``x`` and ``y`` may be
    numbers or tensors of any shape, flattened to a row; every item must have as many values.

    Raises:
        TypeError: when the dataset is empty, its items are not ``(x, y)`` pairs of numbers or
            tensors, or they differ in size.
    """
    name = type(dataset).__name__
    try:
        size = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"dataset {name} has no len(); pass a map-style Dataset of (x, y) pairs") from None
    if size == 0:
        raise TypeError(f"dataset {name} is empty; it needs (x, y) pairs")
    held = getattr(dataset, "x", None), getattr(dataset, "y", None)
    if all(isinstance(part, torch.Tensor) and part.dim() == 2 and len(part) == size for part in held):
        return held  # type: ignore[return-value]
    xs, ys = [], []
    for index in range(size):
        item = dataset[index]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(f"dataset {name} item {index} is {type(item).__name__}, not an (x, y) pair")
        x, y = (torch.as_tensor(value, dtype=torch.float32).reshape(-1) for value in item)
        if xs and (x.numel(), y.numel()) != (xs[0].numel(), ys[0].numel()):
            raise TypeError(
                f"dataset {name} item {index} has x of {x.numel()} and y of {y.numel()} values, item 0 "
                f"{xs[0].numel()} and {ys[0].numel()}; every item needs as many"
            )
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)
