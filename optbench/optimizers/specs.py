"""Optimizers from outside optbench: command-line specs, ``[tool.optbench]`` and entry points.

Three ways in, none of which edits optbench:

- ``--optbench-optimizer 'lion=lion_pytorch:Lion{"lr": 3e-4}'``: a name, an
  importable ``torch.optim.Optimizer`` subclass, and optional JSON keyword arguments;
- a ``[tool.optbench.optimizers.<name>]`` table in the project's ``pyproject.toml``
  with ``class``, and optionally ``kwargs``, ``elementwise``, ``needs_closure``;
- a package's entry point in the group ``optbench.optimizers`` that loads an
  ``OptimizerInfo``, a list of them, or a function returning either.

Every spec is checked before any test runs: the module imports, the class is an
optimizer, and it accepts the keyword arguments on a throwaway parameter. A bad
spec raises ``SpecError`` with one line that names the spec and the fix.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

from optbench.optimizers.registry import OptimizerInfo

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENTRY_POINT_GROUP = "optbench.optimizers"
"""The entry-point group a package uses to add optimizers to the matrix."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.]*$")


class SpecError(ValueError):
    """An optimizer spec that cannot be used; the message names the spec and the fix."""


def load_class(target: str, where: str) -> type[torch.optim.Optimizer]:
    """The ``torch.optim.Optimizer`` subclass that ``module:Class`` names.

    Raises:
        SpecError: the target is malformed, the module does not import, it has
            no such attribute, or that is not an optimizer class.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SpecError(f"{where}: {target!r} is not module:Class (for example torch.optim:SGD)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        reason = f"cannot import {module_name!r} ({error})"
        raise SpecError(f"{where}: {reason}; install it or fix the name") from None
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
    if found is None:
        raise SpecError(f"{where}: module {module_name!r} has no {attribute!r}")
    if not (isinstance(found, type) and issubclass(found, torch.optim.Optimizer)):
        raise SpecError(f"{where}: {target} is not a torch.optim.Optimizer subclass")
    return found


def check_kwargs(cls: type[torch.optim.Optimizer], kwargs: Mapping[str, Any], where: str) -> None:
    """Builds ``cls`` once on a throwaway parameter, so bad keyword arguments fail now, not mid-run.

    Raises:
        SpecError: the constructor refused them.
    """
    try:
        cls([torch.nn.Parameter(torch.zeros(1, 1))], **kwargs)
    except Exception as error:  # any constructor error means these arguments do not fit
        raise SpecError(f"{where}: {cls.__name__}({_show(kwargs)}) fails: {error}") from None


def _show(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in kwargs.items())


def entry(
    name: str,
    target: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    where: str,
    elementwise: bool = False,
    needs_closure: bool = False,
) -> OptimizerInfo:
    """A checked registry entry for the optimizer class ``target`` (``module:Class``).

    Args:
        name: the registry name and first part of scenario ids.
        target: ``module:Class`` of a ``torch.optim.Optimizer`` subclass.
        kwargs: keyword arguments for every batch size.
        where: where the spec came from, for error messages.
        elementwise: declare the update elementwise, so seeds may run as replicas;
            ``tests/test_replicas.py`` shows how to prove it.
        needs_closure: its ``step`` takes a closure.

    Raises:
        SpecError: as ``load_class`` and ``check_kwargs``, or a bad name.
    """
    if not _NAME.match(name):
        raise SpecError(f"{where}: name {name!r} must be lower-case letters, digits, '_' or '.'")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise SpecError(f"{where}: keyword arguments must be a JSON object or TOML table, got {kwargs!r}")
    cls = load_class(target, where)
    kwargs = dict(kwargs or {})
    check_kwargs(cls, kwargs, where)
    return OptimizerInfo(
        name,
        None,
        cls,
        defaults=kwargs,
        elementwise=elementwise,
        needs_closure=needs_closure,
        note=f"from {where}",
    )


def parse_option(spec: str) -> OptimizerInfo:
    """``NAME=module:Class`` with optional JSON keyword arguments right after it.

    Raises:
        SpecError: anything wrong with the spec, named with the spec itself.
    """
    where = f"--optbench-optimizer {spec!r}"
    name, equals, rest = spec.partition("=")
    if not equals:
        raise SpecError(f"{where}: expected NAME=module:Class, optionally followed by JSON keyword arguments")
    target, brace, arguments = rest.partition("{")
    kwargs = None
    if brace:
        try:
            kwargs = json.loads(brace + arguments)
        except json.JSONDecodeError as error:
            raise SpecError(f"{where}: the keyword arguments are not valid JSON ({error.msg})") from None
    return entry(name.strip(), target.strip(), kwargs, where=where)


def from_pyproject(path: Path) -> list[OptimizerInfo]:
    """The optimizers of ``[tool.optbench.optimizers]`` in a ``pyproject.toml``, if it has any.

    Raises:
        SpecError: the file is not valid TOML, or an entry is bad.
    """
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: not valid TOML ({error})") from None
    table: Any = data
    for key in ("tool", "optbench", "optimizers"):
        table = table.get(key, {}) if isinstance(table, dict) else None
    if not isinstance(table, dict):
        raise SpecError(f"{path}: [tool.optbench.optimizers] must be a table of tables, one per optimizer")
    found = []
    for name, options in table.items():
        where = f"{path} [tool.optbench.optimizers.{name}]"
        if not isinstance(options, dict) or not isinstance(options.get("class"), str):
            raise SpecError(f'{where}: needs class = "module:Class"')
        unknown = set(options) - {"class", "kwargs", "elementwise", "needs_closure"}
        if unknown:
            raise SpecError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        found.append(
            entry(
                name,
                options["class"],
                options.get("kwargs"),
                where=where,
                elementwise=bool(options.get("elementwise", False)),
                needs_closure=bool(options.get("needs_closure", False)),
            )
        )
    return found


def from_entry_points(group: str = ENTRY_POINT_GROUP) -> list[OptimizerInfo]:
    """The optimizers that installed packages declare in the entry-point group ``group``.

    Raises:
        SpecError: an entry point does not load, or loads something else than
            ``OptimizerInfo`` entries.
    """
    found: list[OptimizerInfo] = []
    for point in entry_points(group=group):
        where = f"entry point {point.name} = {point.value} ({group})"
        try:
            loaded = point.load()
        except Exception as error:  # a broken package must not take the whole run down with a traceback
            raise SpecError(f"{where}: does not load ({type(error).__name__}: {error})") from None
        value = loaded() if callable(loaded) and not isinstance(loaded, OptimizerInfo) else loaded
        items = [value] if isinstance(value, OptimizerInfo) else value
        if not isinstance(items, Iterable) or not all(isinstance(item, OptimizerInfo) for item in items):
            raise SpecError(f"{where}: must give OptimizerInfo entries, got {type(value).__name__}")
        found.extend(items)
    return found
