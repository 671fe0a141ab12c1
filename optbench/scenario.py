"""A scenario: one optimizer on one problem, batch size, device, dtype and seed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset

from optbench.devices import parse_device
from optbench.problems import PROBLEMS, ModelFactory, Problem
from optbench.record import check_metric_names
from optbench.schedules import CONSTANT, SCHEDULES


class OptimizerLike(Protocol):
    """What the engine needs of an optimizer: ``torch.optim.Optimizer`` has it."""

    param_groups: list[dict[str, Any]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears the gradients of every parameter it holds."""

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> Any:
        """Updates the parameters once; ``closure`` re-evaluates the loss when required."""


OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], OptimizerLike]
DatasetFactory = Callable[[int], Dataset]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.]*$")

MAX_SEED = 2**63 - 1
"""The largest seed a scenario may train (its last, ``seed + seeds - 1``). The engine seeds each model
with ``2 * seed + 1``, and torch takes seeds up to ``2**64 - 1`` (``torch.manual_seed``,
``torch.Generator.manual_seed``); saved runs read back into 64-bit integer columns too."""

DTYPES = MappingProxyType({"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16})
"""The floating-point types a scenario can train in; float32 is the default."""


@dataclass(frozen=True)
class Scenario:
    """Everything one training run depends on; a fresh model and optimizer come from it.

    Attributes:
        name: short lower-case name of the optimizer set-up, the first part of ``id``.
        optimizer: builds the optimizer from the parameters it is given, which are
            always those of the model built for this run.
        batch_size: samples per step; the dataset's size means full batch. A problem
            without data (``Problem.data`` ``None``) and no ``dataset`` has no batch
            size to choose: it takes 1, full batch, and its ids say ``full``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        epochs: passes over the data.
        seed: seeds the data noise, the model's initialisation and the shuffle.
        seeds: how many seeds to train, ``seed`` to ``seed + seeds - 1``, each with
            its own data noise, initialisation and shuffle order.
        shuffle: reshuffle the data every epoch (the tutorial does not).
        needs_closure: the optimizer's ``step`` takes a closure (LBFGS).
        train_eval: the optimizer has modes (schedule-free methods): ``optimizer.train()``
            is called before training steps and ``optimizer.eval()`` before every evaluation,
            so the curves and the final metrics are those of its evaluation iterate.
        create_graph: the optimizer reads second-order information from the gradients'
            graph (Hessian-vector products): each backward runs with ``create_graph=True``.
        dtype: ``float32`` (default), ``float64`` or ``bfloat16``: the model's and
            the data's type; the ids of the others end in ``-float64``/``-bfloat16``.
        schedule: the learning-rate schedule, one of ``optbench.schedules.SCHEDULES``
            (``constant``, the default, attaches none); the ids of the others carry it
            (``adam-bs10-cpu-cosine``).
        elementwise: the optimizer's update is elementwise, so several seeds may
            train as replicas of one vectorised run (``optbench.engine.replicas``);
            otherwise they train one after another. Either way each seed's
            result is the same.
        proven: ``elementwise`` was proven on throwaway runs as the run started
            (``optbench.optimizers.proof``), not declared by a built-in entry; the
            record says which.
        problem: what to train on (``optbench.problems``): its data, model, loss
            and reference solution; the tutorial's line by default. Ids of
            scenarios on any other problem end in ``-<problem>``.
        dataset: instead of the problem's data, a dataset factory taking the
            seed, or a fixed map-style ``Dataset`` of ``(x, y)`` pairs.
        model: instead of the problem's model, a factory taking a seed.
        hyperparams: what the optimizer factory was bound with, for the record.
    """

    name: str
    optimizer: OptimizerFactory
    batch_size: int
    device: str = "cpu"
    epochs: int = 20
    seed: int = 0
    seeds: int = 1
    shuffle: bool = False
    needs_closure: bool = False
    train_eval: bool = False
    create_graph: bool = False
    elementwise: bool = False
    proven: bool = False
    dtype: str = "float32"
    schedule: str = CONSTANT
    problem: Problem = PROBLEMS.default
    dataset: DatasetFactory | Dataset | None = None
    model: ModelFactory | None = None
    hyperparams: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"scenario name {self.name!r} must be lower-case letters, digits, '_' or '.'")
        for attribute in ("batch_size", "epochs", "seeds"):
            value = getattr(self, attribute)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"scenario {attribute} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"scenario seed must be a non-negative integer, got {self.seed!r}")
        if self.seed + self.seeds - 1 > MAX_SEED:
            raise ValueError(
                f"scenario seeds {self.seed} to {self.seed + self.seeds - 1} go past the largest seed, "
                f"{MAX_SEED} (2**63 - 1); start from a smaller seed"
            )
        parse_device(self.device)
        if not isinstance(self.problem, Problem):
            raise ValueError(f"scenario problem must be a Problem (optbench.problems), got {self.problem!r}")
        if self.problem.name in DTYPES:  # its ids would read as the line's in that dtype
            raise ValueError(f"problem name {self.problem.name!r} is a dtype's; give the problem another")
        if self.problem.name in SCHEDULES:  # its ids would read as the line's on that schedule
            raise ValueError(f"problem name {self.problem.name!r} is a schedule's; give the problem another")
        check_metric_names(self.problem.metrics)
        if self.full_batch_only and self.batch_size != 1:
            raise ValueError(
                f"problem {self.problem.name!r} has no data, so no batch sizes: it trains full batch; "
                f"give batch_size 1, not {self.batch_size}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"scenario dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"scenario schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")

    @property
    def full_batch_only(self) -> bool:
        """Whether the scenario has no batch-size axis: its problem has no data and it brings none."""
        return self.problem.data is None and self.dataset is None

    @property
    def id(self) -> str:
        """Stable readable id, such as ``adam-bs10-cpu``: the pytest id and the join key.

        A problem other than the default, then a schedule other than constant, then a dtype
        other than float32, end it (``adam-bs10-cpu-float64``, ``adam-bs10-cpu-quiet-float64``,
        ``adam-bs10-cpu-quiet-cosine-float64``). A problem without data
        has no batch size, so its ids say ``full`` instead (``adam-full-cpu-rosenbrock``); a
        problem with data keeps ``bs<N>`` even at full batch.
        """
        suffix = "" if self.problem.name == PROBLEMS.default.name else f"-{self.problem.name}"
        suffix += "" if self.schedule == CONSTANT else f"-{self.schedule}"
        suffix += "" if self.dtype == "float32" else f"-{self.dtype}"
        batch = "full" if self.full_batch_only else f"bs{self.batch_size}"
        return f"{self.name}-{batch}-{self.device.replace(':', '')}{suffix}"

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` as a ``torch.dtype``."""
        return DTYPES[self.dtype]

    @property
    def hyperparams_json(self) -> str:
        """``hyperparams`` as a JSON object, for the flat record."""
        return json.dumps(dict(self.hyperparams), sort_keys=True, default=repr)
