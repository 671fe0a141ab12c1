"""Sweeping one case's learning rate over seeds, and many cases over processes or a cluster.

A case is one optimizer x problem x batch size x dtype. Its sweep trains every grid
point over the same K seeds: stacked as one vectorised run where the optimizer is
elementwise (``optbench.engine.sweep``), else point by point. Cases spread over
processes with joblib, or over a Dask cluster through joblib's ``dask`` backend.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch

from optbench.engine import summarise
from optbench.engine.sweep import LR, fit_points
from optbench.messages import one_line
from optbench.optimizers.registry import OptimizerInfo
from optbench.options import DEFAULT_SEEDS
from optbench.problems import Problem
from optbench.record import spread
from optbench.record.numbers import or_inf
from optbench.scenario import Scenario
from optbench.schedules import CONSTANT
from optbench.tune.choose import Point, choose
from optbench.tune.grid import DEFAULT_GRID, check_grid
from optbench.tune.settings import CaseRow, point_row


class NoLearningRateError(ValueError):
    """The optimizer's constructor takes no ``lr``, so there is nothing to sweep."""


def check_takes_lr(info: OptimizerInfo) -> None:
    """Raises ``NoLearningRateError`` unless ``info``'s factory takes an ``lr`` keyword.

    A factory that takes ``**kwargs`` is built once with ``lr`` on a throwaway parameter.
    """
    fix = f"tune only optimizers with an lr, or run {info.name} without tuning at the settings you give it"
    try:
        parameters = inspect.signature(info.factory).parameters
    except (TypeError, ValueError):  # no signature to read: try building it
        parameters = {}
    if LR in parameters:
        return
    if parameters and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        raise NoLearningRateError(f"optimizer {info.name!r} takes no lr keyword argument; {fix}")
    try:
        info.factory([torch.nn.Parameter(torch.zeros(1, 1))], **{**info.defaults, LR: 1e-3})
    except TypeError as error:
        raise NoLearningRateError(f"optimizer {info.name!r} takes no lr ({error}); {fix}") from None


@dataclass(frozen=True)
class Job:
    """One case to sweep; cloudpickle (joblib's loky, Dask) carries it to another process or machine."""

    info: OptimizerInfo
    problem: Problem
    batch_size: int
    dtype: str = "float32"
    device: str = "cpu"
    grid: tuple[float, ...] = DEFAULT_GRID
    seeds: int | None = DEFAULT_SEEDS
    """Seeds per point; ``None`` takes as many as the default matrix would (``auto_seeds``)."""
    seed: int = 0
    schedule: str = CONSTANT
    """The learning-rate schedule every point trains under (``optbench.schedules``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", check_grid(self.grid))

    @property
    def name(self) -> str:
        """The case as ids read: ``adam-bs10-cpu``."""
        return self.base().id

    def base(self) -> Scenario:
        """The scenario every point varies: the registry's settings for the case, with the sweep's seeds."""
        seeds = self.info.auto_seeds(self.dtype) if self.seeds is None else self.seeds
        return self.info.scenario(
            self.batch_size,
            self.device,
            self.seed,
            problem=self.problem,
            dtype=self.dtype,
            seeds=seeds,
            schedule=self.schedule,
        )

    def points(self) -> list[Scenario]:
        """One scenario per grid point: the base with that ``lr``."""
        base = self.base()
        points = []
        for lr in self.grid:
            hyperparams = {**dict(base.hyperparams), LR: lr}
            points.append(
                replace(
                    base,
                    optimizer=partial(self.info.factory, **hyperparams),
                    hyperparams=tuple(sorted(hyperparams.items())),
                )
            )
        return points

    def cache_key(self) -> str:
        """A digest of what a cached sweep of this case must match.

        That is the class, its other keyword arguments, the problem, batch size, dtype, schedule,
        device, grid, seeds, epochs and torch version.
        """
        base = self.base()
        factory = self.info.factory
        target = getattr(factory, "__func__", factory)
        described = {
            "class": f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}",
            "kwargs": {k: v for k, v in base.hyperparams if k != LR},
            "problem": self.problem.name,
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "schedule": self.schedule,
            "device": self.device,
            "grid": list(self.grid),
            "seeds": base.seeds,
            "seed": self.seed,
            "epochs": base.epochs,
            "torch": torch.__version__,
        }
        text = json.dumps(described, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def _point(fitted_record: dict[str, Any], lr: float, seconds: float) -> Point:
    excess = [or_inf(value) for value in fitted_record["seed_excess_loss"]]
    statuses = list(fitted_record["seed_status"])
    return Point(
        lr=lr,
        pass_rate=float(fitted_record["pass_rate"]),
        excess_median=spread.quantile(excess, 0.5),
        excess_q95=spread.quantile(excess, 0.95),
        diverged=statuses.count("diverged") / len(statuses),
        seconds=seconds,
    )


def sweep_case(job: Job) -> CaseRow:
    """Sweeps one case's grid over its seeds and applies the rule (``optbench.tune.choose``)."""
    swept = fit_points(job.points())
    stacked, total = swept.stacked, swept.seconds
    found = []
    for lr, one in zip(job.grid, swept.fitted, strict=True):
        found.append(_point(summarise(one), lr, total / len(job.grid) if stacked else one.seconds))
    choice = choose(found)
    base = job.base()
    at = next(point for point in found if point.lr == choice.lr)
    return CaseRow(
        optimizer=job.info.name,
        problem=job.problem.name,
        batch_size=job.batch_size,
        dtype=job.dtype,
        schedule=job.schedule,
        device=job.device,
        hyperparams=json.dumps({k: v for k, v in base.hyperparams if k != LR}, sort_keys=True, default=repr),
        lr=choice.lr,
        window=choice.window,
        tunability=round(choice.tunability, 3),
        pass_rate=at.pass_rate,
        grid=list(job.grid),
        seeds=base.seeds,
        epochs=base.epochs,
        how="vectorised" if stacked else "point by point",
        torch=torch.__version__,
        date=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        seconds=round(total, 6),
        points=[point_row(point) for point in found],
    )


class SchedulerError(ConnectionError):
    """The Dask scheduler cannot be reached at the address given."""


class MissingExtraError(ImportError):
    """A library the sweep needs is not installed; the message names the extra to install."""


def _needs(module: str, extra: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise MissingExtraError(
            f"sweeping needs {module}, which is not installed; pip install 'optbench[{extra}]'"
        ) from None


def sweep(
    jobs: Sequence[Job],
    *,
    n_jobs: int = -1,
    dask: str | None = None,
    progress: bool = True,
    done: Callable[[CaseRow], None] | None = None,
) -> list[CaseRow]:
    """Sweeps every case, over ``n_jobs`` processes (all cores: -1) or the Dask scheduler at ``dask``.

    Args:
        jobs: the cases, in the order the result keeps.
        n_jobs: joblib's ``n_jobs``; 1 sweeps in this process.
        dask: a ``dask.distributed`` scheduler address (``tcp://host:8786``); the cases run on its
            workers through joblib's ``dask`` backend, and ``n_jobs`` is left to the cluster.
        progress: a tqdm bar on stderr, shown when stderr is a terminal and the sweep takes more
            than two seconds.
        done: called with each case as it finishes (in the order they finish).

    Raises:
        MissingExtraError: joblib or tqdm (``optbench[tune]``) or distributed (``optbench[dask]``)
            is missing.
        SchedulerError: the scheduler cannot be reached.
    """
    joblib = _needs("joblib", "tune")
    tqdm = _needs("tqdm", "tune").tqdm
    results: dict[int, CaseRow] = {}
    bar = tqdm(
        total=len(jobs), desc="optbench tune", unit="case", disable=None if progress else True, delay=2.0
    )
    try:
        for index, row in _run(joblib, jobs, n_jobs, dask):
            results[index] = row
            if done is not None:
                done(row)
            bar.update()
    finally:
        bar.close()
    return [results[index] for index in range(len(jobs))]


def _indexed(index: int, job: Job) -> tuple[int, CaseRow]:
    return index, sweep_case(job)


def _run(joblib: Any, jobs: Sequence[Job], n_jobs: int, dask: str | None) -> Iterator[tuple[int, CaseRow]]:
    tasks = [joblib.delayed(_indexed)(index, job) for index, job in enumerate(jobs)]
    if dask is None:
        yield from joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks)
        return
    distributed = _needs("distributed", "dask")
    try:
        client = distributed.Client(dask, timeout="10s", set_as_default=False)
    except (OSError, ValueError, TypeError) as error:  # unreachable, or not a scheduler address
        reason = one_line(str(error), 160)
        raise SchedulerError(f"--dask {dask}: cannot reach the scheduler ({reason})") from None
    with client, joblib.parallel_config(backend="dask", client=client):
        yield from joblib.Parallel(return_as="generator_unordered")(tasks)
