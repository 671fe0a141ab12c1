"""Any map-style dataset of ``(x, y)`` pairs as two column tensors, for a scenario's own ``dataset``."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from optbench.problems.line import LineDataset


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
