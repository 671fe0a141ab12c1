"""What a problem is: its data, its model, its loss and its reference solution, as one frozen value."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch

from optbench.model import ModelFactory

Data = tuple[torch.Tensor, torch.Tensor]
"""Inputs and targets, one sample per row, on the CPU in float32 as built."""

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(prediction, target)``: the mean loss over a batch, as ``torch.nn.functional.mse_loss``."""

Measure = Callable[[torch.nn.Module], dict[str, float]]
"""``measure(model)``: a problem's own measurements of a trained model, by name (the line's slope
and intercept)."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass(frozen=True)
class Reference:
    """The best any optimizer can do on one seed's data, computed in float64.

    Attributes:
        loss: the problem's loss at the solution.
        params: the solution's parameters, flattened in the model's parameter order.
    """

    loss: float
    params: tuple[float, ...]


@dataclass(frozen=True)
class Problem:
    """One problem to train on: everything the engine needs that is not the optimizer.

    Attributes:
        name: lower-case name, the key in ``PROBLEMS``; ids of scenarios on any
            problem but the default end in ``-<name>``.
        data: builds the data for a seed (the seed draws its noise).
        model: builds a fresh model from a seed (the seed draws its initialisation).
        loss: the loss a step minimises and the curves record.
        reference: the solution on one seed's data, exact or solved in float64.
        measure: the problem's own measurements of a trained model, which the
            record keeps under their names (NaN or infinite ones as ``None``).
        truth: the parameters the data were generated from, where known (the
            line's slope and intercept); ``None`` where only the reference is.
        batch_sizes: the default matrix's batch sizes; the data's size is full batch.
        epochs: epochs per batch size in the default matrix (a mapping, kept as
            sorted ``(batch size, epochs)`` pairs).
        default_epochs: epochs for a batch size not in ``epochs``.
    """

    name: str
    data: Callable[[int], Data]
    model: ModelFactory
    loss: Loss
    reference: Callable[[torch.Tensor, torch.Tensor], Reference]
    measure: Measure
    batch_sizes: tuple[int, ...]
    truth: tuple[float, ...] | None = None
    epochs: Mapping[int, int] | tuple[tuple[int, int], ...] = ()
    default_epochs: int = 20

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"problem name {self.name!r} must be lower-case letters, digits or '_'")
        # Pairs, not a mapping proxy: a Problem (and so a Scenario) stays hashable and picklable.
        pairs = self.epochs.items() if isinstance(self.epochs, Mapping) else self.epochs
        object.__setattr__(self, "epochs", tuple(sorted((int(bs), int(n)) for bs, n in pairs)))

    def epochs_for(self, batch_size: int) -> int:
        """The epochs a scenario at ``batch_size`` trains by default."""
        return dict(self.epochs).get(batch_size, self.default_epochs)


class UnknownProblemError(KeyError):
    """A problem name that is not in the table."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Problems(Mapping[str, Problem]):
    """A read-only table of problems by name, in the order given; the first is the default."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        if not problems:
            raise ValueError("a problem table needs at least one problem")
        self._problems = {problem.name: problem for problem in problems}
        if len(self._problems) != len(problems):
            names = [problem.name for problem in problems]
            twice = next(name for name in names if names.count(name) > 1)
            raise ValueError(f"two problems share the name {twice!r}; give each a name of its own")

    def __getitem__(self, name: str) -> Problem:
        try:
            return self._problems[name]
        except KeyError:
            raise UnknownProblemError(f"unknown problem {name!r}; choose from {', '.join(self)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._problems)

    def __len__(self) -> int:
        return len(self._problems)

    def with_entries(self, problems: Iterable[Problem]) -> Problems:
        """A new table with ``problems`` after these.

        Raises:
            ValueError: an entry is not a ``Problem``, or two entries share a name.
        """
        added = list(problems)
        for problem in added:
            if not isinstance(problem, Problem):
                raise ValueError(f"{problem!r} is not a Problem; return optbench.problems.Problem values")
        taken = [problem.name for problem in added if problem.name in self._problems]
        if taken:
            raise ValueError(f"problem {taken[0]!r} is already in the table; give yours a name of its own")
        return Problems((*self._problems.values(), *added))

    @property
    def default(self) -> Problem:
        """The first problem: the one a scenario trains on unless it names another."""
        return next(iter(self._problems.values()))
