"""What a problem is: its data, its model, its loss, its reference solution and its metrics, as one value."""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch.nn.utils import parameters_to_vector


class ModelFactory(Protocol):
    """Builds a fresh model from a seed; called once per training run."""

    def __call__(self, seed: int) -> torch.nn.Module:
        """A new model, initialised from ``seed``."""


Data = tuple[torch.Tensor, torch.Tensor]
"""Inputs and targets, one sample per row, on the CPU in float32 as built."""

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(prediction, target)``: the mean loss over a batch, as ``torch.nn.functional.mse_loss``."""

Measure = Callable[[torch.nn.Module, tuple[float, ...]], dict[str, float]]
"""``measure(model, target)``: a problem's own metrics of a trained model, by name, given the
parameters it is judged against (the true ones where known, else the reference's)."""

NO_DATA: Data = (torch.zeros(1, 0), torch.zeros(1, 1))
"""What a problem without data trains on: one sample with no features, so one step is full batch.
Its model ignores the input's values and its loss the target's: the objective is the parameters'."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")

SUITE_ROUNDS = 1
"""Timed rounds, after a warm-up, of each scenario of the suite's problems (the line times 5).
They are there to converge and to say when; one round each keeps the matrix over every problem
under 4 minutes on 2 cores (docs/performance.md), and ``--benchmark-min-rounds`` times more."""


@dataclass(frozen=True)
class Metric:
    """One number the record keeps of every seed's trained model.

    Attributes:
        name: the record's field (``excess_loss``); per-seed lists are ``seed_<name>``.
        label: how messages and tables say it (``excess MSE``); the name by default.
        bound: a run converges only when this metric ends at most ``bound`` (at the
            checks' quantile over seeds); ``None``: reported, never judged.
        tolerance: the gate fails a candidate whose value grew by more than this over
            its baseline's; ``None``: never gated. Judged metrics are errors: lower is better.
    """

    name: str
    label: str = ""
    bound: float | None = None
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"metric name {self.name!r} must be lower-case letters, digits or '_'")
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))
        for attribute in ("bound", "tolerance"):
            value = getattr(self, attribute)
            if value is not None and not (
                isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
            ):
                raise ValueError(f"metric {self.name!r}: {attribute} must be a non-negative number or None")

    def __hash__(self) -> int:
        # Tables of metrics key the readers' caches, once per row: hash once per metric.
        try:
            return self._hash  # type: ignore[attr-defined]
        except AttributeError:
            object.__setattr__(self, "_hash", hash((self.name, self.label, self.bound, self.tolerance)))
            return self._hash  # type: ignore[attr-defined]

    def __getstate__(self) -> dict[str, object]:
        # A string's hash differs from one process to the next: a pickled metric hashes anew.
        return {key: value for key, value in self.__dict__.items() if key != "_hash"}

    def as_dict(self) -> dict[str, object]:
        """The metric as the record keeps it (its ``metrics`` table), JSON-ready."""
        return {"name": self.name, "label": self.label, "bound": self.bound, "tolerance": self.tolerance}


GENERIC = (
    Metric("final_loss", "final loss"),
    Metric("reference_loss", "reference loss"),
    Metric("excess_loss", "excess loss"),
    Metric("distance", "distance to the reference"),
)
"""What every problem reports of every seed: its final full-data loss, the reference solution's,
their difference, and the Euclidean distance of the parameters to the reference's (NaN, saved as
``None``, for a model whose parameters are not the reference's in number, such as a scenario's own
wider model). A problem's own table may give any of these a bound and a tolerance (the line bounds
its ``excess_loss``)."""


@dataclass(frozen=True)
class Reference:
    """The best any optimizer can do on one seed's data, computed in float64.

    Attributes:
        loss: the problem's loss at the solution.
        params: the solution's parameters, flattened in the model's parameter order.
    """

    loss: float
    params: tuple[float, ...]


def cached(
    solve: Callable[[torch.Tensor, torch.Tensor], Reference],
) -> Callable[[torch.Tensor, torch.Tensor], Reference]:
    """Caches a reference solver by the data's values, for references solved numerically.

    Each seed's data is solved once per process, however many scenarios train on it.
    """
    solved: dict[str, Reference] = {}

    @functools.wraps(solve)
    def reference(x: torch.Tensor, y: torch.Tensor) -> Reference:
        digest = hashlib.sha256()
        for tensor in (x, y):
            values = tensor.detach().to("cpu", torch.float64).contiguous()
            digest.update(str(tuple(values.shape)).encode())
            digest.update(values.numpy().tobytes())
        key = digest.hexdigest()
        if key not in solved:
            solved[key] = solve(x, y)
        return solved[key]

    return reference


def judged_against(truth: tuple[float, ...] | None, reference: Reference) -> tuple[float, ...]:
    """What a fit is judged against: the true parameters where known, else the reference's.

    Raises:
        ValueError: the truth and the reference have different numbers of parameters.
    """
    if truth is not None and len(truth) != len(reference.params):
        raise ValueError(
            f"the data's truth has {len(truth)} parameters and its reference solution "
            f"{len(reference.params)}; give the truth in the reference's parameter order, or None"
        )
    return tuple(float(value) for value in (reference.params if truth is None else truth))


@dataclass(frozen=True)
class Problem:
    """One problem to train on: everything the engine needs that is not the optimizer.

    Attributes:
        name: lower-case name, the key in ``PROBLEMS``; ids of scenarios on any
            problem but the default end in ``-<name>``.
        data: builds the data for a seed (the seed draws its noise); ``None`` for a
            problem that is a pure function of the parameters (``NO_DATA``: one
            empty sample, so batch size 1 is full batch).
        model: builds a fresh model from a seed (the seed draws its initialisation).
        loss: the loss a step minimises and the curves record.
        reference: the solution on one seed's data, exact or solved in float64
            (wrap a numerical solver in ``cached``).
        metrics: the problem's metric table: its own metrics, which ``measure``
            returns, and bounds and tolerances for any of them or of ``GENERIC``.
        measure: the problem's own metrics of a trained model (``{}`` where it has
            none); the record keeps them under their names (non-finite as ``None``).
        truth: the parameters the data were generated from, where known (the
            line's slope and intercept); ``None`` where only the reference is.
        batch_sizes: the default matrix's batch sizes; the data's size is full batch, and
            a larger one runs as full batch (``batch_sizes_for``).
        epochs: epochs per batch size in the default matrix (a mapping, kept as
            sorted ``(batch size, epochs)`` pairs).
        default_epochs: epochs for a batch size not in ``epochs``.
        rounds: timed rounds of each of its scenarios in the benchmark, after one warm-up;
            ``None``: pytest-benchmark's ``--benchmark-min-rounds`` (5). A
            ``--benchmark-min-rounds`` other than 5 applies to every problem.
    """

    name: str
    data: Callable[[int], Data] | None
    model: ModelFactory
    loss: Loss
    reference: Callable[[torch.Tensor, torch.Tensor], Reference]
    metrics: tuple[Metric, ...]
    batch_sizes: tuple[int, ...]
    measure: Measure | None = None
    truth: tuple[float, ...] | None = None
    epochs: Mapping[int, int] | tuple[tuple[int, int], ...] = ()
    default_epochs: int = 20
    rounds: int | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"problem name {self.name!r} must be lower-case letters, digits or '_'")
        if self.rounds is not None and (
            not isinstance(self.rounds, int) or isinstance(self.rounds, bool) or self.rounds < 1
        ):
            raise ValueError(f"problem {self.name!r}: rounds must be a positive integer or None")
        # Pairs, not a mapping proxy: a Problem (and so a Scenario) stays hashable and picklable.
        pairs = self.epochs.items() if isinstance(self.epochs, Mapping) else self.epochs
        object.__setattr__(self, "epochs", tuple(sorted((int(bs), int(n)) for bs, n in pairs)))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        names = [metric.name for metric in self.metrics]
        if len(set(names)) != len(names) or not all(isinstance(m, Metric) for m in self.metrics):
            raise ValueError(f"problem {self.name!r}: its metrics must be Metric values with distinct names")
        if not any(metric.bound is not None for metric in self.table):
            raise ValueError(f"problem {self.name!r}: give at least one metric a bound, or nothing converges")

    @property
    def table(self) -> tuple[Metric, ...]:
        """Every metric the record keeps: ``GENERIC`` (with this problem's bounds), then its own."""
        own = {metric.name: metric for metric in self.metrics}
        generic = tuple(own.pop(metric.name, metric) for metric in GENERIC)
        return generic + tuple(own.values())

    @property
    def measured(self) -> tuple[str, ...]:
        """The names ``measure`` must return: the table's metrics that are not ``GENERIC``."""
        generic = {metric.name for metric in GENERIC}
        return tuple(metric.name for metric in self.metrics if metric.name not in generic)

    @functools.cached_property
    def size(self) -> int:
        """Samples in seed 0's data (every seed's data has as many): full batch. 1 without data.

        Built once per problem and kept (a frozen dataclass's ``__dict__`` can still cache).
        """
        return int(self.seed_data(0)[0].shape[0])

    def batch_sizes_for(self, asked: Sequence[int] | None = None) -> tuple[int, ...]:
        """The batch sizes a matrix runs on this problem, in the order asked.

        ``asked`` (``None`` or empty: the problem's own ``batch_sizes``) is clamped to the data's
        ``size``, so a larger batch runs as full batch, and sizes that end up equal run once:
        ``(50, 100, 500)`` on 100 samples gives ``(50, 100)``. A problem without data has no
        batch-size axis: it gives ``(1,)``, full batch, whatever is asked.
        """
        return tuple(dict.fromkeys(min(int(size), self.size) for size in (asked or self.batch_sizes)))

    def epochs_for(self, batch_size: int) -> int:
        """The epochs a scenario at ``batch_size`` trains by default."""
        return dict(self.epochs).get(batch_size, self.default_epochs)

    def seed_data(self, seed: int) -> Data:
        """The data of ``seed``: the problem's, or ``NO_DATA`` for a problem without data."""
        return NO_DATA if self.data is None else self.data(seed)

    def evaluate(
        self,
        model: torch.nn.Module,
        reference: Reference,
        target: tuple[float, ...],
        final_loss: float,
    ) -> dict[str, float]:
        """Every metric of ``self.table`` for a trained model, by name, in the table's order.

        Args:
            model: the trained model (one seed's).
            reference: the reference solution on that seed's data.
            target: what the fit is judged against: the true parameters, else the reference's.
            final_loss: the full-data loss the training loop ended with.

        Raises:
            ValueError: ``measure`` did not return exactly the problem's own metric names.
        """
        params = parameters_to_vector([p.detach().to("cpu", torch.float64) for p in model.parameters()])
        solution = torch.tensor(reference.params, dtype=torch.float64)
        distance = float((params - solution).norm()) if params.shape == solution.shape else math.nan
        values = {
            "final_loss": final_loss,
            "reference_loss": reference.loss,
            "excess_loss": final_loss - reference.loss,
            "distance": distance,
        }
        training = model.training
        model.eval()  # measuring must not move a running statistic
        try:
            measured = self.measure(model, target) if self.measure is not None else {}
        finally:
            model.train(training)
        if not isinstance(measured, dict) or sorted(measured) != sorted(self.measured):
            got = sorted(measured) if isinstance(measured, dict) else type(measured).__name__
            raise ValueError(
                f"problem {self.name!r} measured {got}; its measure must return a dict of exactly "
                f"{', '.join(self.measured) or 'nothing (no measure)'}, its own metrics"
            )
        values.update(measured)
        return {metric.name: float(values[metric.name]) for metric in self.table}


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
