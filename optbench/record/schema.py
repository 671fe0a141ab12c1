"""Saved records checked against the record's declarations, with pydantic.

The models here are built from ``optbench.record``'s ``Field`` declarations and a record's own
metric table, never written out by hand: a field's kind, bounds and choices become its pydantic
type, and the table names the scalar, per-seed and quantile fields. Validation is strict: a count
saved as the string ``"32"`` or a status that is not one of ``STATUSES`` is an error, not a value
to guess at. JSON has no NaN, so a record saves a non-finite metric as ``null``; every metric and
curve value may be ``null`` (a diverged seed), no count or set-up field may. A field declared
``optional`` (time to target) may be ``null`` or absent, in a record of any version.

Each check raises ``SchemaError`` with one line that names the field and what is wrong with it;
``optbench.results`` adds the file and the scenario.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator

from optbench.problems.base import Metric
from optbench.record import (
    CURVES,
    METADATA,
    SCHEMA_VERSION,
    SEED_STATUS,
    SEED_TARGET,
    TARGET,
    TIMING,
    Field,
    check_metric_names,
    metric_table,
    quantile_fields,
    scalar_fields,
    seed_fields,
)

_STRICT = ConfigDict(strict=True, extra="ignore")

MetricValue = float | None
"""A metric as a record saves it: a number, or ``null`` where it was not finite."""

OLD_NEEDED = (
    "id", "optimizer", "batch_size", "device", "status", "final_loss", "reference_loss", "epoch_loss",
)  # fmt: skip
"""What a record of schema 1 or 2 must hold once read as today's (``problems.line.from_schema2``):
the fields those schemas always wrote. Any other field they hold is checked as today's are."""


class SchemaError(ValueError):
    """A saved run, baseline or record that does not match the declared schema; one line."""


def _annotation(field: Field) -> Any:
    """A declared field's pydantic type: its kind, with its bounds and choices (a list's entries' kind)."""
    if field.choices:
        return Literal[field.choices]  # type: ignore[valid-type]
    if field.kind is list:
        if field.items is None:
            return list[Any]
        entry: Any = Annotated[field.items, pydantic.Field(ge=field.minimum, le=field.maximum)]
        return list[entry | None] if field.optional else list[entry]  # type: ignore[valid-type]
    constraints = pydantic.Field(ge=field.minimum, le=field.maximum, pattern=field.pattern)
    return Annotated[field.kind, constraints]


class _Entry(BaseModel):
    """One entry of a record's metric table."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: str
    label: str = ""
    bound: Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False)] | None = None
    tolerance: Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False)] | None = None


class _Table(BaseModel):
    model_config = _STRICT

    metrics: Annotated[list[_Entry], pydantic.Field(min_length=1)]


def _first_error(error: ValidationError) -> str:
    """The first of pydantic's errors as ``field: what (got value)``, with how many more there are."""
    errors = error.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    shown = repr(first.get("input"))
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    message = first["msg"].removeprefix("Value error, ")  # a model validator's own words
    message = message[0].lower() + message[1:]
    text = f"{where}: {message}" if where else message
    if where and first["type"] not in ("missing", "value_error"):
        text += f" (got {shown})"
    if len(errors) > 1:
        text += f", and {len(errors) - 1} more problem(s)"
    return text


def _validate(model: type[BaseModel], data: Any) -> None:
    try:
        model.model_validate(data)
    except ValidationError as error:
        raise SchemaError(_first_error(error)) from None


def check_table(info: Mapping[str, Any]) -> tuple[Metric, ...]:
    """The record's metric table, checked: entries of the declared shape, names a record may use.

    Raises:
        SchemaError: the table is missing, malformed, names a metric twice or takes a record's name.
    """
    _validate(_Table, info)
    try:
        metrics = metric_table(info)
        check_metric_names(metrics)
    except ValueError as error:
        raise SchemaError(f"metrics: {error}") from None
    names = [metric.name for metric in metrics]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SchemaError(f"metrics: the table names {twice[0]!r} twice")
    return metrics


class _Consistent(BaseModel):
    """What declarations cannot say field by field: lists as long as the seeds, bands spanning the curve."""

    model_config = _STRICT

    @model_validator(mode="after")
    def _lengths(self) -> _Consistent:
        values = self.__dict__
        seeds = values.get("seeds")
        for name in type(self).seed_names:  # type: ignore[attr-defined]
            found = values.get(name)
            if isinstance(seeds, int) and isinstance(found, list) and len(found) != seeds:
                raise ValueError(f"{name}: holds {len(found)} value(s) for {seeds} seed(s)")
        # A band spans every seed's curve: at least the first seed's (epoch_loss), and longer where a
        # later seed trained on after the first one diverged, up to every epoch.
        curve, epochs = values.get("epoch_loss"), values.get("epochs")
        for name in type(self).band_names:  # type: ignore[attr-defined]
            found = values.get(name)
            if not (isinstance(curve, list) and isinstance(found, list)):
                continue
            if len(found) < len(curve):
                raise ValueError(f"{name}: holds {len(found)} point(s) for the {len(curve)} of epoch_loss")
            if isinstance(epochs, int) and len(found) > max(epochs + 1, len(curve)):
                raise ValueError(f"{name}: holds {len(found)} point(s) for {epochs} epoch(s)")
        return self


@functools.lru_cache(maxsize=256)
def record_model(
    metrics: tuple[Metric, ...], *, version: int = SCHEMA_VERSION, baseline: bool = False
) -> type[BaseModel]:
    """The pydantic model of a record with this metric table, as saved in a run or a baseline file.

    A record of schema 3 or later must hold every declared field of its version (a baseline file
    every field it keeps) but the ``optional`` ones: a field declared ``since`` a later version may
    be absent. One of schema 1 or 2, read as today's, must hold ``OLD_NEEDED``. Every other field a
    record holds is checked all the same.
    """
    declared: list[tuple[str, Any]] = [
        (field.name, _annotation(field)) for field in METADATA if field.name != "metrics"
    ]
    declared += [(name, MetricValue) for name in scalar_fields(metrics)]
    declared += [(name, list[MetricValue]) for name in seed_fields(metrics)[:-1]]
    declared.append((SEED_STATUS.name, list[Literal[SEED_STATUS.choices]]))  # type: ignore[valid-type]
    declared += [(name, MetricValue) for name in quantile_fields(metrics)]
    declared += [(field.name, _annotation(field)) for field in TARGET]
    curve = Annotated[list[MetricValue], pydantic.Field(min_length=1)]
    declared += [(field.name, curve if field.name == "epoch_loss" else list[MetricValue]) for field in CURVES]
    own = (*METADATA, *TARGET, *CURVES)
    dropped = {field.name for field in own if not field.baseline} if baseline else set()
    optional = {field.name for field in own if field.optional or field.since > version}
    definitions: dict[str, Any] = {}
    for name, annotation in declared:
        if name in dropped:
            continue
        required = name in OLD_NEEDED if version < 3 else name not in optional
        definitions[name] = (annotation, ...) if required else (annotation | None, None)
    model = create_model(f"Record{len(metrics)}", __base__=_Consistent, **definitions)
    model.seed_names = (*seed_fields(metrics), *SEED_TARGET)  # type: ignore[attr-defined]
    bands = tuple(field.name for field in CURVES if field.name.startswith("epoch_loss_q"))
    model.band_names = () if baseline else bands  # type: ignore[attr-defined]
    return model


def check_record(info: Mapping[str, Any], *, version: int = SCHEMA_VERSION, baseline: bool = False) -> None:
    """Checks one saved record (read as today's) against its metric table's model.

    Raises:
        SchemaError: the first field that is missing or wrong, and how many more there are.
    """
    _validate(record_model(check_table(info), version=version, baseline=baseline), info)


_Timing = create_model(
    "Timing",
    __config__=_STRICT,
    **{
        field.name: (_annotation(field) | None, None)
        for field in TIMING  # pytest-benchmark's statistics: absent from a baseline's scenarios
    },
)


def check_stats(stats: Any) -> None:
    """Checks pytest-benchmark's ``stats`` of one benchmark: an object of non-negative numbers.

    Raises:
        SchemaError: ``stats`` is not an object, or a statistic optbench reads is not a number.
    """
    if stats is None:
        return
    if not isinstance(stats, dict):
        raise SchemaError(f"stats: expected an object of timings (got {type(stats).__name__})")
    try:
        _Timing.model_validate(stats)
    except ValidationError as error:
        raise SchemaError("stats." + _first_error(error)) from None


SchemaVersion = Annotated[int, pydantic.Field(ge=1, le=SCHEMA_VERSION)]


class RunFile(BaseModel):
    """A saved pytest-benchmark run, in the parts optbench reads."""

    model_config = _STRICT

    benchmarks: list[Any]
    machine_info: dict[str, Any] = {}
    commit_info: dict[str, Any] | None = None
    datetime: str | None = None
    optbench_schema: SchemaVersion | None = None


class BaselineFile(BaseModel):
    """A baseline file (``optbench.baseline``)."""

    model_config = _STRICT

    kind: Literal["optbench-baseline"]
    optbench_schema: SchemaVersion
    source: str = ""
    machine_info: dict[str, Any] = {}
    scenarios: list[Any]


def check_document(data: Any, model: type[BaseModel]) -> None:
    """Checks the outer shape of a run or a baseline file.

    Raises:
        SchemaError: not an object, or a part of it of the wrong kind (``optbench_schema``
            newer than this optbench reads says so and how to fix it).
    """
    if not isinstance(data, dict):
        raise SchemaError(f"expected a JSON object, got {type(data).__name__}")
    version = data.get("optbench_schema")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise SchemaError(
            f"optbench_schema {version} is newer than this optbench reads ({SCHEMA_VERSION}); "
            "upgrade optbench"
        )
    _validate(model, data)
