"""Model factories: a fresh, seeded ``nn.Linear(1, 1)`` per call."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn


class ModelFactory(Protocol):
    """Builds a fresh model from a seed; called once per training run."""

    def __call__(self, seed: int) -> nn.Module:
        """A new model, initialised from ``seed``."""


def linear(seed: int, *, weight: float | None = None, bias: float | None = None) -> nn.Linear:
    """The tutorial's model, ``nn.Linear(1, 1)``, with a reproducible start.

    Args:
        seed: seeds PyTorch's default initialisation (``U(-1, 1)`` for one input)
            without touching the caller's global random state.
        weight: a fixed initial weight instead (the tutorial shows -10).
        bias: a fixed initial bias instead (the tutorial shows -20).

    Returns:
        A new module on the CPU; the engine moves it to the scenario's device.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Linear(1, 1)
    with torch.no_grad():
        if weight is not None:
            model.weight.fill_(weight)
        if bias is not None:
            model.bias.fill_(bias)
    return model
