"""One optimizer for the matrices, a companion for everything else (Muon's usual setup)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

ParamsFactory = Callable[[list[torch.nn.Parameter]], Optimizer]


class MatrixSplit:
    """Steps ``matrix`` on 2-D parameters and ``companion`` on the others.

    Muon orthogonalises a matrix update and refuses 1-D parameters, so a bias is
    handed to a conventional optimizer, as Muon's authors do. The pair looks like
    one optimizer to the engine: ``param_groups`` lists both optimizers' groups,
    so the check that an optimizer holds exactly the model's parameters still
    applies.

    Args:
        params: all parameters of the model.
        matrix: builds the optimizer for the 2-D parameters.
        companion: builds the optimizer for the rest.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        matrix: ParamsFactory,
        companion: ParamsFactory,
    ) -> None:
        params = list(params)
        matrices = [p for p in params if p.ndim == 2]
        others = [p for p in params if p.ndim != 2]
        self.optimizers = [
            factory(group) for factory, group in ((matrix, matrices), (companion, others)) if group
        ]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """Both optimizers' parameter groups, matrices first."""
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears the gradients of both optimizers' parameters."""
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Evaluates ``closure`` once if given, then steps both optimizers."""
        loss = closure() if closure is not None else None
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def state_dict(self) -> list[dict[str, Any]]:
        """Both optimizers' state, in the order of ``param_groups``."""
        return [optimizer.state_dict() for optimizer in self.optimizers]
