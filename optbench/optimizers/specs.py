"""Optimizers from outside optbench: command-line specs, ``[tool.optbench]`` and entry points.

Three ways in, none of which edits optbench:

- ``--optbench-optimizer 'lion=lion_pytorch:Lion{"lr": 3e-4}'``: a name, an
  importable ``torch.optim.Optimizer`` subclass, optional capability flags in brackets
  (``sf=schedulefree:SGDScheduleFree[train_eval]``), and optional JSON keyword arguments;
- a ``[tool.optbench.optimizers.<name>]`` table in the project's ``pyproject.toml``
  with ``class``, and optionally ``kwargs`` and the flags (``train_eval = true``);
- a package's entry point in the group ``optbench.optimizers`` that loads an
  ``OptimizerInfo``, a list of them, or a function returning either.

Keyword arguments keyed by a batch size apply at that batch size alone, on top of the others:
``{"lr": 3e-4, "1": {"lr": 1e-5}}`` (in TOML, ``kwargs = {lr = 3e-4, "1" = {lr = 1e-5}}``).

Every spec is checked before any test runs: the module imports, the class is an
optimizer, and it accepts the keyword arguments on a throwaway parameter. A bad
spec raises ``SpecError`` with one line that names the spec and the fix, whatever
the spec's own code raised (``USER_ERRORS``), cut to ``LINE_LIMIT`` characters.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch

from optbench.messages import one_line
from optbench.optimizers.registry import Case, OptimizerInfo

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENTRY_POINT_GROUP = "optbench.optimizers"
"""The entry-point group a package uses to add optimizers to the matrix."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.]*$")

USER_ERRORS = (Exception, SystemExit)
"""What a plug-in's own code may raise that becomes a one-line error: anything but
``KeyboardInterrupt`` (and ``GeneratorExit``), so Ctrl-C still stops the run."""


def raised(error: BaseException) -> str:
    """What ``error`` was, for one line: its type, message and the innermost line that raised it.

    That line's file is named from the working directory where it lies under it (``conftest.py:6``).
    """
    message = f"SystemExit({error.code!r})" if isinstance(error, SystemExit) else type(error).__name__
    if not isinstance(error, SystemExit) and str(error):
        message += f": {error}"
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return message
    path = Path(frames[-1].filename)
    try:
        shown = path.relative_to(Path.cwd())
    except (ValueError, OSError):  # not under it, or the working directory is gone
        shown = path
    return f"{message} (at {shown}:{frames[-1].lineno})"


class SpecError(ValueError):
    """An optimizer spec that cannot be used; the message, one line, names the spec and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def load_class(target: str, where: str) -> type[torch.optim.Optimizer]:
    """The ``torch.optim.Optimizer`` subclass that ``module:Class`` names.

    Raises:
        SpecError: the target is malformed, the module does not import, it has
            no such attribute, or that is not an optimizer class.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SpecError(f"{where}: {target!r} is not module:Class (for example torch.optim:SGD)")
    if module_name.startswith("."):
        raise SpecError(
            f"{where}: {module_name!r} is a relative module name; give the full one, as in torch.optim"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        reason = f"cannot import {module_name!r} ({error})"
        raise SpecError(f"{where}: {reason}; install it or fix the name") from None
    except USER_ERRORS as error:  # the module's own code failed as it ran
        raise SpecError(
            f"{where}: importing {module_name!r} raised {raised(error)}; fix that module"
        ) from None
    found: Any = module
    try:
        for part in attribute.split("."):
            found = getattr(found, part, None)
    except USER_ERRORS as error:  # a module-level __getattr__ or a property failed
        raise SpecError(
            f"{where}: looking up {attribute!r} raised {raised(error)}; fix {module_name}"
        ) from None
    if found is None:
        raise SpecError(f"{where}: module {module_name!r} has no {attribute!r}")
    if not (isinstance(found, type) and issubclass(found, torch.optim.Optimizer)):
        raise SpecError(f"{where}: {target} is not a torch.optim.Optimizer subclass")
    return found


def check_kwargs(cls: type[torch.optim.Optimizer], kwargs: Mapping[str, Any], where: str) -> None:
    """Builds ``cls`` once on a throwaway parameter, so bad keyword arguments fail now, not mid-run.

    Raises:
        SpecError: the constructor refused them, with whatever it raised (``SystemExit`` too).
    """
    try:
        cls([torch.nn.Parameter(torch.zeros(1, 1))], **kwargs)
    except USER_ERRORS as error:  # any constructor error means these arguments do not fit
        reason = str(error) if isinstance(error, Exception) and str(error) else raised(error)
        raise SpecError(f"{where}: {cls.__name__}({_show(kwargs)}) fails: {one_line(reason, 150)}") from None


FLAGS = ("elementwise", "needs_closure", "train_eval", "create_graph")
"""The capability flags a spec may set (``OptimizerInfo``'s fields of those names, all off by default):
seeds as replicas, a closure for ``step``, ``train()``/``eval()`` modes, backward with
``create_graph=True``."""


def split_kwargs(kwargs: Mapping[Any, Any], where: str) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """Keyword arguments for every batch size, and those keyed by a batch size (``{"1": {...}}``).

    A key of digits (or an ``int``) names a batch size and holds that batch size's own keyword
    arguments; no keyword argument's name can start with a digit.

    Raises:
        SpecError: a batch size that is not positive, or that holds something else than keyword arguments.
    """
    common: dict[str, Any] = {}
    sizes: dict[int, dict[str, Any]] = {}
    for key, value in kwargs.items():
        if not _is_size(key):
            common[key] = value
            continue
        size = int(key)
        if size < 1:
            raise SpecError(f"{where}: batch size {key!r} of the keyword arguments must be positive")
        if not isinstance(value, Mapping) or any(_is_size(inner) for inner in value):
            raise SpecError(
                f"{where}: batch size {key!r} holds {one_line(repr(value), 60)}; give it the keyword "
                f'arguments for that batch size, as in {{"{size}": {{"lr": 0.01}}}}'
            )
        if size in sizes:
            raise SpecError(f"{where}: batch size {size} is given twice in the keyword arguments")
        sizes[size] = dict(value)
    return common, sizes


def _is_size(key: object) -> bool:
    """Whether a keyword-argument key names a batch size: ASCII digits, or an ``int``."""
    if isinstance(key, str):
        return key.isascii() and key.isdigit()  # not "²", which isdigit() takes and int() refuses
    return isinstance(key, int) and not isinstance(key, bool)


def _show(kwargs: Mapping[str, Any]) -> str:
    """The keyword arguments as a call shows them, each value cut to a readable length."""
    return ", ".join(f"{key}={one_line(repr(value), 60)}" for key, value in kwargs.items())


def entry(
    name: str,
    target: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    where: str,
    **flags: bool,
) -> OptimizerInfo:
    """A checked registry entry for the optimizer class ``target`` (``module:Class``).

    Args:
        name: the registry name and first part of scenario ids.
        target: ``module:Class`` of a ``torch.optim.Optimizer`` subclass.
        kwargs: keyword arguments for every batch size, and under a batch size's key
            (``"1"``) those for that batch size alone (``split_kwargs``).
        where: where the spec came from, for error messages.
        **flags: any of ``FLAGS``, ``True`` to set it. ``elementwise`` is a claim that
            the plugin proves before the seeds run as replicas (``optbench.optimizers.proof``).

    Raises:
        SpecError: as ``load_class`` and ``check_kwargs``, a bad name, or an unknown flag.
    """
    if not _NAME.match(name):
        raise SpecError(f"{where}: name {name!r} must be lower-case letters, digits, '_' or '.'")
    unknown = sorted(set(flags) - set(FLAGS))
    if unknown:
        raise SpecError(f"{where}: unknown flag(s) {', '.join(unknown)}; choose from {', '.join(FLAGS)}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise SpecError(f"{where}: keyword arguments must be a JSON object or TOML table, got {kwargs!r}")
    cls = load_class(target, where)
    common, sizes = split_kwargs(kwargs or {}, where)
    check_kwargs(cls, common, where)
    for size, own in sizes.items():
        check_kwargs(cls, {**common, **own}, f"{where} at batch size {size}")
    if flags.get("train_eval"):
        missing = [method for method in ("train", "eval") if not callable(getattr(cls, method, None))]
        if missing:
            raise SpecError(
                f"{where}: train_eval is set but {cls.__name__} has no "
                f"{' or '.join(m + '()' for m in missing)}; drop the flag"
            )
    return OptimizerInfo(
        name,
        None,
        cls,
        defaults=common,
        cases={(None, size): Case(own) for size, own in sorted(sizes.items())},
        note=f"from {where}",
        **flags,
    )


def option_name(spec: str) -> str:
    """The name an ``--optbench-optimizer`` spec gives its optimizer (what comes before ``=``)."""
    return spec.partition("=")[0].strip()


_FLAGGED = re.compile(r"^(?P<target>[^\[]*)\[(?P<flags>[^\]]*)\]\s*$")


def parse_option(spec: str) -> OptimizerInfo:
    """``NAME=module:Class``, optional flags in brackets, then optional JSON keyword arguments.

    For example ``sf=schedulefree:SGDScheduleFree[train_eval]{"lr": 1.0, "1": {"lr": 0.1}}``.

    Raises:
        SpecError: anything wrong with the spec, named with the spec itself.
    """
    where = f"--optbench-optimizer {one_line(repr(spec), 120)}"
    _, equals, rest = spec.partition("=")
    if not equals:
        raise SpecError(
            f"{where}: expected NAME=module:Class, optionally followed by [flags] and JSON keyword arguments"
        )
    target, brace, arguments = rest.partition("{")
    kwargs = None
    if brace:
        try:
            kwargs = json.loads(brace + arguments)
        except json.JSONDecodeError as error:
            raise SpecError(f"{where}: the keyword arguments are not valid JSON ({error.msg})") from None
    flags: dict[str, bool] = {}
    flagged = _FLAGGED.match(target)
    if flagged:
        target = flagged["target"]
        for flag in (part.strip() for part in flagged["flags"].split(",")):
            if flag not in FLAGS:
                raise SpecError(f"{where}: unknown flag {flag!r} in brackets; choose from {', '.join(FLAGS)}")
            flags[flag] = True
    elif "[" in target or "]" in target:
        raise SpecError(
            f"{where}: flags go in one pair of brackets after the class, as in module:Class[train_eval]"
        )
    return entry(option_name(spec), target.strip(), kwargs, where=where, **flags)


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
        unknown = set(options) - {"class", "kwargs", *FLAGS}
        if unknown:
            raise SpecError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}; choose from class, kwargs, "
                f"{', '.join(FLAGS)}"
            )
        for flag in FLAGS:
            if not isinstance(options.get(flag, False), bool):
                raise SpecError(
                    f"{where}: {flag} = {_toml(options[flag])} is not a TOML boolean; "
                    f"write {flag} = true or {flag} = false, without quotes"
                )
        if not isinstance(options.get("kwargs", {}), dict):
            raise SpecError(
                f"{where}: kwargs = {_toml(options['kwargs'])} is not a table; "
                "write kwargs = {lr = 0.01} or a [tool.optbench.optimizers.NAME.kwargs] table"
            )
        found.append(
            entry(
                name,
                options["class"],
                options.get("kwargs"),
                where=where,
                **{flag: options[flag] for flag in FLAGS if flag in options},
            )
        )
    return found


def _toml(value: object) -> str:
    """``value`` roughly as TOML writes it (strings in double quotes), cut to a readable length."""
    shown = json.dumps(value) if isinstance(value, str) else repr(value)
    return one_line(shown, 60)


def from_entry_points(group: str = ENTRY_POINT_GROUP) -> list[OptimizerInfo]:
    """The optimizers that installed packages declare in the entry-point group ``group``.

    Raises:
        SpecError: an entry point does not load, its function raises, or it gives something
            else than ``OptimizerInfo`` entries.
    """
    found: list[OptimizerInfo] = []
    for point in entry_points(group=group):
        where = f"entry point {point.name} = {point.value} ({group})"
        try:
            loaded = point.load()
        except USER_ERRORS as error:  # a broken package must not take the whole run down with a traceback
            raise SpecError(
                f"{where}: does not load ({raised(error)}); fix or uninstall its package"
            ) from None
        try:
            value = loaded() if callable(loaded) and not isinstance(loaded, OptimizerInfo) else loaded
            items = [value] if isinstance(value, OptimizerInfo) else value
            items = list(items) if isinstance(items, Iterable) else None  # a generator, read once
        except USER_ERRORS as error:
            raise SpecError(f"{where}: raised {raised(error)}; fix or uninstall its package") from None
        if items is None or not all(isinstance(item, OptimizerInfo) for item in items):
            raise SpecError(f"{where}: must give OptimizerInfo entries, got {type(value).__name__}")
        found.extend(items)
    return found
