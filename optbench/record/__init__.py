"""The record: the flat, JSON-ready dict one training run produces, declared once.

Every field of a record is in one of six groups, declared here and nowhere else:

- ``METADATA``: what ran and how it ended (id, problem, optimizer, ..., status, the metric table);
- scalars: the first seed's value of each metric of the problem's table, under the metric's name;
- per-seed lists: ``seed_<metric>`` for each metric, and ``seed_status``;
- quantiles over seeds, ``<metric>_qNN``, of each metric that has a bound;
- ``TARGET``: when the loss first came within the problem's ``excess_loss`` bound (time to
  target): the first seed's step and time, each seed's, and the median step over seeds;
- ``CURVES``: the per-epoch and per-step losses, and the per-epoch loss's band over seeds.

The scalar names come from the problem (``optbench.problems``); this module only says how they
become fields, and which names a metric may not take. Readers, tables, the gate and the baseline
derive their columns from here: a row of the results DataFrame is a record with the ``SOURCE`` and
``TIMING`` columns before it and ``PASSED`` after. The converters between JSON's ``None`` and
floats are in ``numbers.py`` beside it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from optbench.problems.base import Metric
from optbench.schedules import CONSTANT, SCHEDULES

Status = Literal["converged", "not_converged", "stalled", "diverged"]
SeedRuns = Literal["one", "vectorised", "sequential"]
STATUSES: tuple[str, ...] = get_args(Status)
SEED_RUNS: tuple[str, ...] = get_args(SeedRuns)

ELEMENTWISE = ("", "declared", "proven")
"""What the record's ``elementwise`` says of the optimizer's claim that its seeds may run as replicas."""

SCHEMA_VERSION = 4
"""Version of the record's layout, saved as ``optbench_schema`` in every run and baseline file.

Version 2 added the multi-seed fields and ``dtype``; version 3 made the problem a field and its
metrics the record's (``final_mse`` became ``final_loss``, ``optimum_mse`` ``reference_loss``,
``epoch_mse`` ``epoch_loss``; ``metrics`` holds the problem's metric table). Records of versions 1
and 2, all of the line, read as version 3 (``optbench.problems.line.from_schema2``).

Fields declared ``optional`` since (the ``TARGET`` group) left the version at 3: a record may lack
them or hold ``null``, so a record saved before them reads as it did (each ``None``), and a reader
before them ignores them.

Version 4 added the status ``stalled`` and gave ``diverged`` its documented factor, and the fields
``schedule`` and ``elementwise``
(``optbench.record.checks.STATUS_MEANINGS``): a reader before it refuses a record that holds the
new value, so the version says so, and that reader asks to be upgraded instead of calling the file
damaged. Records of versions 1 to 3 read as they are, statuses included: there ``diverged`` also
covers a run that ended anywhere above where it started, which version 4 calls ``not_converged`` or
``stalled`` unless it ended ``DIVERGENCE_FACTOR`` times as far from the reference as it started."""

Record = dict[str, Any]
"""What the engine returns and the benchmark stores in ``extra_info``: the fields declared here."""

QUANTILES = (0.1, 0.5, 0.9, 0.95)
"""The quantiles over seeds every record holds of each bounded metric (``excess_loss_q95``)."""

BAND = (0.1, 0.5, 0.9)
"""The quantiles of the per-epoch loss over seeds that the report draws: the median and a band."""


@dataclass(frozen=True)
class Field:
    """One declared field of a record.

    Attributes:
        name: the key in the record.
        kind: its JSON type: ``str``, ``int``, ``float``, ``bool`` or ``list``.
        doc: what it holds.
        default: what a reader takes when an older record lacks the field (``None``: the
            reader's own for the kind, ``""`` or 0).
        minimum: the least value a number may take (``None``: any).
        maximum: the greatest value a number may take (``None``: any).
        choices: the values a string may take (empty: any).
        pattern: a regular expression a string must match (``None``: any).
        baseline: whether a baseline file keeps the field (``optbench.baseline`` drops set-up,
            timings and curves).
        optional: whether a record may lack the field or hold ``null`` in it: a field added to
            schema 3 after records of it were saved (``None`` where absent).
        items: for a list, the kind of each entry, checked with ``minimum`` and ``maximum``
            (``null`` entries too where ``optional``); ``None``: entries are not checked here.
        since: the schema version that added the field: a record of an earlier version may
            lack it, and a reader takes its ``default``.

    The schema a reader validates saved records with (``optbench.record.schema``) is built from
    these declarations: kind, bounds and choices are all it checks of a field.
    """

    name: str
    kind: type
    doc: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    baseline: bool = True
    optional: bool = False
    items: type | None = None
    since: int = 1


NAME = r"^[^\x00-\x1f\x7f]{1,200}$"
"""What a name in a record may be: one line, 1 to 200 characters, so every message quoting it is one line."""

METADATA = (
    Field("id", str, "the scenario's id, such as adam-bs10-cpu: the join key", pattern=NAME),
    Field(
        "problem",
        str,
        "the problem's name (optbench.problems); the default problem's when absent",
        pattern=NAME,
    ),
    Field("optimizer", str, "the optimizer set-up's name, such as adam or adam.fused", pattern=NAME),
    Field("batch_size", int, "samples per step", minimum=1),
    Field("device", str, "cpu, cuda, cuda:1, mps", pattern=NAME),
    Field("dtype", str, "float32, float64 or bfloat16", default="float32"),
    Field(
        "schedule",
        str,
        "the learning-rate schedule (optbench.schedules); constant in records before version 4",
        default=CONSTANT,
        choices=tuple(SCHEDULES),
        since=4,
    ),
    Field("epochs", int, "passes over the data", minimum=0),
    Field("seed", int, "the first seed", minimum=0),
    Field("shuffle", bool, "whether each epoch reshuffled the data", baseline=False),
    Field("hyperparams", str, "the optimizer's keyword arguments, as a JSON object", baseline=False),
    Field("steps", int, "optimizer steps the first seed took", minimum=0),
    Field("seconds", float, "time the training took, all seeds together", minimum=0, baseline=False),
    Field(
        "status",
        str,
        "converged, not_converged, stalled or diverged, judging all seeds (optbench.record.checks)",
        choices=STATUSES,
    ),
    Field("expected_failure", str, "the reason the case may fail (its xfail mark), or ''"),
    Field("seeds", int, "seeds trained: seed to seed + seeds - 1", minimum=1),
    Field("seed_runs", str, "how they ran: one, vectorised or sequential", default="one", choices=SEED_RUNS),
    Field(
        "elementwise",
        str,
        "whether its seeds may run as replicas: declared (a built-in entry's flag, proven by optbench's "
        "tests), proven (an added optimizer, proven on throwaway runs as the run started; "
        "optbench.optimizers.proof), or '' (not elementwise; not said in records before version 4)",
        default="",
        choices=ELEMENTWISE,
        baseline=False,
        since=4,
    ),
    Field("pass_rate", float, "the share of seeds that converged", minimum=0, maximum=1),
    Field("metrics", list, "the problem's metric table: each metric's name, label, bound and tolerance"),
    Field("step_loss_stride", int, "steps averaged into each point of step_loss", minimum=1, baseline=False),
)
"""What ran and how it ended: one value per record."""

CURVES = (
    Field("epoch_loss", list, "the first seed's full-data loss before training and after each epoch"),
    Field(
        "step_loss",
        list,
        "the first seed's per-step loss, averaged down to at most 200 points",
        baseline=False,
    ),
    *(
        Field(
            f"epoch_loss_q{round(q * 100):02d}",
            list,
            f"the per-epoch loss's {q:g} quantile over seeds",
            baseline=False,
        )
        for q in BAND
    ),
)
"""Curves: lists of floats (``None`` where not finite). A baseline keeps the loss before training."""

SEED_STATUS = Field("seed_status", list, "each seed's status, in seed order", choices=STATUSES)

TARGET = (
    Field(
        "target_step",
        int,
        "the first seed's optimizer step at which its full-data loss first came within the "
        "excess_loss bound of the reference loss (0: before training); null if it never did or the "
        "problem bounds no excess_loss",
        minimum=0,
        optional=True,
    ),
    Field(
        "target_seconds",
        float,
        "target_step's time, estimated from a uniform step rate: the first seed's training seconds "
        "x target_step / steps; null where target_step is",
        minimum=0,
        optional=True,
        baseline=False,
    ),
    Field(
        "seed_target_step",
        list,
        "each seed's target_step, in seed order (null for a seed that never got there)",
        minimum=0,
        optional=True,
        items=int,
    ),
    Field(
        "seed_target_seconds",
        list,
        "each seed's target_seconds, in seed order (a vectorised run's seeds share its seconds)",
        minimum=0,
        optional=True,
        items=float,
        baseline=False,
    ),
    Field(
        "target_step_q50",
        int,
        "the nearest-rank median of seed_target_step, a seed that never got there counted as "
        "infinitely late; null when the median is such a seed",
        minimum=0,
        optional=True,
    ),
)
"""Time to target, as AlgoPerf compares optimizers: when, not only whether, the loss got within its
bound (``optbench.record.checks.time_to_target``). Optional: records saved before them lack them."""

SEED_TARGET = tuple(field.name for field in TARGET if field.kind is list)
"""The time-to-target fields that hold one entry per seed."""


SOURCE = (
    Field("run", str, "the saved run's file name, without .json"),
    Field("save", str, "its save number (0003) when autosaved, else ''"),
    Field("machine", str, "the machine it ran on (machine_info's node)"),
    Field("commit", str, "the commit it ran at, 12 characters"),
    Field("date", str, "when it ran (a timestamp in the DataFrame)"),
    Field("torch", str, "the torch version it ran with"),
    Field("schema", int, "the record schema it was saved in"),
    Field("test", str, "pytest's name for the test"),
)
"""Where a row of the results DataFrame came from: the first columns of every row."""

TIMING = (
    Field("min", float, "the fastest timed round, in seconds (NaN where not timed)", minimum=0),
    Field("median", float, "the median timed round", minimum=0),
    Field("mean", float, "the mean timed round", minimum=0),
    Field("stddev", float, "the timed rounds' standard deviation", minimum=0),
    Field("rounds", int, "the timed rounds", minimum=0),
)
"""pytest-benchmark's statistics of a row's timed rounds: the columns between its source and record."""

PASSED = Field("passed", bool, "the record passes its bounds, judged again on reading")
"""The one column a row adds after its record."""

_QUANTILE = re.compile(r"_q\d\d$")


def check_metric_names(metrics: Iterable[Metric]) -> None:
    """Raises ``ValueError`` for a metric whose name a record or a row already uses for something else.

    A metric named ``steps`` would overwrite the record's step count; ``seed_x`` and ``x_q95``
    would be read as another metric's per-seed list and quantile.
    """
    taken = {field.name for field in (*METADATA, *CURVES, SEED_STATUS, *TARGET, *SOURCE, *TIMING, PASSED)}
    for metric in metrics:
        if metric.name in taken or metric.name.startswith("seed_") or _QUANTILE.search(metric.name):
            raise ValueError(
                f"metric name {metric.name!r} is taken by the record's own fields (or reads as a seed "
                "list or a quantile); give the metric another"
            )


def seed_field(metric: str) -> str:
    """The per-seed list of a metric: ``seed_field("excess_loss")`` is ``"seed_excess_loss"``."""
    return f"seed_{metric}"


def quantile_field(metric: str, q: float) -> str:
    """A quantile's field: ``quantile_field("excess_loss", 0.95)`` is ``"excess_loss_q95"``."""
    return f"{metric}_q{round(q * 100):02d}"


def metric_table(record: Mapping[str, Any]) -> tuple[Metric, ...]:
    """The record's metric table, as it declares it in ``metrics``.

    A saved record holds the table as a list of objects; a row read into the results DataFrame
    (``optbench.results``) holds it already parsed, as a tuple of ``Metric`` values.

    Raises:
        ValueError: an entry is not a metric (a name, and bounds that are non-negative numbers).
        KeyError, TypeError: the table is missing or not a list of objects.
    """
    entries = record["metrics"]
    if isinstance(entries, tuple) and (not entries or isinstance(entries[0], Metric)):
        return entries  # as metric_table made it
    key = tuple(
        (str(m["name"]), str(m.get("label") or ""), m.get("bound"), m.get("tolerance")) for m in entries
    )
    return _metrics(key)


@functools.lru_cache(maxsize=1024)
def _metrics(key: tuple[tuple[Any, ...], ...]) -> tuple[Metric, ...]:
    """The metric table of one key: every record of a problem shares it, so it is parsed once."""
    return tuple(Metric(*entry) for entry in key)


def bounded(metrics: Iterable[Metric]) -> tuple[Metric, ...]:
    """The metrics that decide convergence: those with a bound."""
    return tuple(metric for metric in metrics if metric.bound is not None)


@functools.lru_cache(maxsize=256)
def scalar_fields(metrics: tuple[Metric, ...]) -> tuple[str, ...]:
    """The first seed's metric fields of a record with this table."""
    return tuple(metric.name for metric in metrics)


@functools.lru_cache(maxsize=256)
def seed_fields(metrics: tuple[Metric, ...]) -> tuple[str, ...]:
    """The per-seed lists of a record with this table, ``seed_status`` last."""
    return (*(seed_field(metric.name) for metric in metrics), SEED_STATUS.name)


@functools.lru_cache(maxsize=256)
def quantile_fields(metrics: tuple[Metric, ...]) -> tuple[str, ...]:
    """The quantile fields of a record with this table: each bounded metric at each of ``QUANTILES``."""
    return tuple(quantile_field(metric.name, q) for metric in bounded(metrics) for q in QUANTILES)


@functools.lru_cache(maxsize=256)
def fields(metrics: tuple[Metric, ...]) -> tuple[str, ...]:
    """Every field of a record with this metric table, in the declared order."""
    return (
        *(field.name for field in METADATA),
        *scalar_fields(metrics),
        *seed_fields(metrics),
        *quantile_fields(metrics),
        *(field.name for field in TARGET),
        *(field.name for field in CURVES),
    )
