"""The optimizers under test, as data: one entry each, alphabetical, with capability flags."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

import torch

from optbench import replicas
from optbench.problems import LINE, Problem
from optbench.scenario import OptimizerFactory, Scenario
from optbench.split import MatrixSplit

BATCH_SIZES = LINE.batch_sizes
"""The default matrix's batch sizes, the line's: 100 is the whole dataset (full batch)."""

EPOCHS = MappingProxyType(dict(LINE.epochs))
"""Epochs per batch size in the default matrix, the line's: large batches take few steps per epoch."""

DEFAULT_EPOCHS = LINE.default_epochs
"""Epochs for a batch size not in ``EPOCHS``."""

IMPLS = ("forloop", "foreach", "fused")
"""Implementations an optimizer may have: one tensor at a time, multi-tensor, one fused kernel."""

AUTO_SEEDS = 32
"""Seeds per scenario in the default matrix for optimizers flagged ``elementwise``: they
train as replicas of one vectorised run, at well under twice the cost of one seed
(docs/performance.md). Other optimizers train one seed."""


class UnknownOptimizerError(KeyError):
    """An optimizer name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class OptimizerInfo:
    """One optimizer under test: how to build it for this problem, and what it can do.

    Attributes:
        name: registry key and first part of scenario ids (``adam``).
        torch_name: the ``torch.optim`` class it exercises, or ``None`` for a
            third-party optimizer.
        factory: called as ``factory(params, **hyperparams)``.
        defaults: hyper-parameters tuned for this problem, for every batch size.
        per_batch_size: overrides of ``defaults`` for particular batch sizes.
        epochs: overrides of the default epochs per batch size.
        expected_failures: batch size -> reason, for combinations that honestly
            do not converge within the budget; the benchmark marks them as strict
            expected failures, so an unexpected pass is reported too.
        unreliable: batch size -> reason, for combinations that converge on most
            seeds but not all (measured by ``optbench.calibrate``); the benchmark
            marks them as non-strict expected failures: timed and reported, never
            failing the suite.
        dtype_failures: dtype -> batch size -> reason: strict expected failures
            in that dtype only (bfloat16's coarse steps stall small updates).
        dtype_unreliable: dtype -> batch size -> reason: non-strict ones.
        needs_closure: ``step`` takes a closure that re-evaluates the loss (LBFGS).
        matrix_only: updates only 2-D parameters; a companion takes the rest.
        sparse_only: needs sparse gradients.
        elementwise: each element's update depends only on that element's own
            gradient history, so independent runs can be packed side by side.
        foreach: accepts ``foreach=True`` (multi-tensor implementation).
        fused: accepts ``fused=True`` (fused kernel implementation).
        note: why the hyper-parameters differ from torch's defaults.
    """

    name: str
    torch_name: str | None
    factory: OptimizerFactory
    defaults: Mapping[str, Any] = field(default_factory=dict)
    per_batch_size: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    epochs: Mapping[int, int] = field(default_factory=dict)
    expected_failures: Mapping[int, str] = field(default_factory=dict)
    unreliable: Mapping[int, str] = field(default_factory=dict)
    dtype_failures: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    dtype_unreliable: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    needs_closure: bool = False
    matrix_only: bool = False
    sparse_only: bool = False
    elementwise: bool = False
    foreach: bool = False
    fused: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        for attribute in ("defaults", "per_batch_size", "epochs", "expected_failures", "unreliable"):
            object.__setattr__(self, attribute, _frozen(getattr(self, attribute)))
        for attribute in ("dtype_failures", "dtype_unreliable"):
            by_dtype = {dtype: _frozen(cases) for dtype, cases in getattr(self, attribute).items()}
            object.__setattr__(self, attribute, _frozen(by_dtype))

    def hyperparams(self, batch_size: int) -> dict[str, Any]:
        """The hyper-parameters this optimizer uses at ``batch_size``."""
        return {**self.defaults, **self.per_batch_size.get(batch_size, {})}

    def expected_failure(
        self, batch_size: int, dtype: str = "float32", problem: Problem = LINE
    ) -> tuple[str, bool] | None:
        """``(reason, strict)`` when ``batch_size`` in ``dtype`` may not converge, else ``None``.

        The failures were measured on the line; on any other problem none is known.
        """
        if problem.name != LINE.name:
            return None
        if batch_size in self.dtype_failures.get(dtype, {}):
            return self.dtype_failures[dtype][batch_size], True
        if batch_size in self.dtype_unreliable.get(dtype, {}):
            return self.dtype_unreliable[dtype][batch_size], False
        if batch_size in self.expected_failures:
            return self.expected_failures[batch_size], True
        if batch_size in self.unreliable:
            return self.unreliable[batch_size], False
        return None

    def epochs_for(self, batch_size: int, problem: Problem = LINE) -> int:
        """The epochs this optimizer gets at ``batch_size`` on ``problem``.

        Its own ``epochs`` were tuned on the line, so they apply there; any other
        problem gives its own default.
        """
        if problem.name != LINE.name:
            return problem.epochs_for(batch_size)
        return self.epochs.get(batch_size, LINE.epochs_for(batch_size))

    def impls(self, device: str = "cpu") -> tuple[str, ...]:
        """The implementations this optimizer has on ``device``.

        Always ``forloop``, then ``foreach`` and ``fused`` where its flags say so
        (fused on cpu and cuda only).
        """
        found = ["forloop"]
        if self.foreach:
            found.append("foreach")
        if self.fused and device.split(":")[0] in ("cpu", "cuda"):
            found.append("fused")
        return tuple(found)

    def impl_hyperparams(self, impl: str) -> dict[str, Any]:
        """The keyword arguments that select ``impl`` (``{}`` for an optimizer with only one).

        Raises:
            ValueError: ``impl`` is not one of ``IMPLS``.
        """
        if impl not in IMPLS:
            raise ValueError(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")
        if impl == "foreach":
            return {"foreach": True}
        if impl == "fused":
            return {"fused": True}
        return {"foreach": False} if self.foreach or self.fused else {}

    def auto_seeds(self, dtype: str = "float32") -> int:
        """Seeds where they are cheap: ``AUTO_SEEDS`` where they run as replicas, else 1."""
        vectorised = replicas.applies(
            elementwise=self.elementwise, needs_closure=self.needs_closure, dtype=dtype
        )
        return AUTO_SEEDS if vectorised else 1

    def scenario(
        self,
        batch_size: int,
        device: str = "cpu",
        seed: int = 0,
        impl: str = "",
        **overrides: Any,
    ) -> Scenario:
        """The scenario for this optimizer; ``overrides`` replace any scenario field (``seeds=32``).

        ``impl`` (``forloop``, ``foreach`` or ``fused``) selects an implementation and
        names the scenario ``<name>.<impl>``; empty keeps torch's default choice.
        """
        problem = overrides.get("problem", LINE)  # not a Problem: Scenario says so in one line
        hyperparams = self.hyperparams(batch_size)
        if impl:
            hyperparams.update(self.impl_hyperparams(impl))
        fields: dict[str, Any] = {
            "name": f"{self.name}.{impl}" if impl else self.name,
            "optimizer": partial(self.factory, **hyperparams),
            "batch_size": batch_size,
            "device": device,
            "epochs": self.epochs_for(batch_size, problem if isinstance(problem, Problem) else LINE),
            "seed": seed,
            "needs_closure": self.needs_closure,
            "elementwise": self.elementwise,
            "hyperparams": tuple(sorted(hyperparams.items())),
        }
        fields.update(overrides)
        return Scenario(**fields)


class Registry(Mapping[str, OptimizerInfo]):
    """Optimizers by name, in alphabetical order; unknown names get a helpful error."""

    def __init__(self, entries: Iterable[OptimizerInfo]) -> None:
        self._entries: dict[str, OptimizerInfo] = {}
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name in self._entries:
                raise ValueError(f"optimizer {entry.name!r} is registered twice")
            self._entries[entry.name] = entry

    def __getitem__(self, name: str) -> OptimizerInfo:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownOptimizerError(
                f"unknown optimizer {name!r}; choose from {', '.join(self._entries)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def with_entries(self, entries: Iterable[OptimizerInfo], replace: bool = False) -> Registry:
        """A new registry with ``entries`` added to these.

        Args:
            entries: the new entries; two of them may not share a name.
            replace: let an entry replace one of these with its name (to retune a
                default optimizer) instead of raising ``ValueError``.
        """
        entries = list(Registry(entries).values())  # raises for a name given twice
        kept = [
            entry
            for entry in self._entries.values()
            if not (replace and entry.name in {e.name for e in entries})
        ]
        return Registry([*kept, *entries])


def _bfloat16_stalls(*batch_sizes: int) -> dict[str, dict[int, str]]:
    """Cases that never converge in bfloat16 (0 of 32 seeds; docs/calibration.md)."""
    reason = "bfloat16 drops steps under the weight's rounding step (1/64 near 5): 0 of 32 seeds converged"
    return {"bfloat16": dict.fromkeys(batch_sizes, reason)}


def _muon(params: Iterable[torch.nn.Parameter], *, companion_lr: float, **muon: Any) -> MatrixSplit:
    return MatrixSplit(
        params,
        matrix=partial(torch.optim.Muon, **muon),
        companion=partial(torch.optim.Adam, lr=companion_lr),
    )


OPTIMIZERS = Registry(
    [
        OptimizerInfo(
            "adadelta",
            "Adadelta",
            torch.optim.Adadelta,
            defaults={"lr": 10.0},
            per_batch_size={1: {"lr": 1.0}, 10: {"lr": 30.0}},
            epochs={50: 300, 100: 300},
            elementwise=True,
            foreach=True,
            note="its step starts near sqrt(eps) * lr, so large batches need a large lr and more epochs",
            dtype_failures=_bfloat16_stalls(1),
        ),
        OptimizerInfo(
            "adafactor",
            "Adafactor",
            torch.optim.Adafactor,
            defaults={"lr": 0.1, "eps": (None, 1.0)},
            per_batch_size={1: {"lr": 0.01}, 10: {"lr": 0.02}},
            epochs={10: 100},
            foreach=True,
            note="steps scale with the parameter's RMS, floored at eps[1]; torch's floor 1e-3 "
            "leaves a bias that starts near 0 almost still. Factored second moments for "
            "matrices, so not elementwise",
        ),
        OptimizerInfo(
            "adagrad",
            "Adagrad",
            torch.optim.Adagrad,
            defaults={"lr": 3.0},
            per_batch_size={1: {"lr": 0.3}},
            elementwise=True,
            foreach=True,
            fused=True,
            note="torch's default lr 0.01 leaves the final MSE above 200 (seed 0, bs 1 and 100)",
            dtype_failures=_bfloat16_stalls(1),
        ),
        OptimizerInfo(
            "adam",
            "Adam",
            torch.optim.Adam,
            defaults={"lr": 0.3},
            per_batch_size={1: {"lr": 0.03}, 50: {"lr": 3.0}, 100: {"lr": 1.0}},
            elementwise=True,
            foreach=True,
            fused=True,
            dtype_failures=_bfloat16_stalls(1),
        ),
        OptimizerInfo(
            "adamax",
            "Adamax",
            torch.optim.Adamax,
            defaults={"lr": 3.0},
            per_batch_size={1: {"lr": 0.03}, 10: {"lr": 1.0}},
            elementwise=True,
            foreach=True,
            dtype_failures=_bfloat16_stalls(1),
        ),
        OptimizerInfo(
            "adamw",
            "AdamW",
            torch.optim.AdamW,
            defaults={"lr": 3.0},
            per_batch_size={1: {"lr": 0.02}, 10: {"lr": 0.3}},
            elementwise=True,
            foreach=True,
            fused=True,
            note="torch's default weight decay 0.01 is kept; it pulls the fit towards 0 a little",
            dtype_failures=_bfloat16_stalls(1),
        ),
        OptimizerInfo(
            "asgd",
            "ASGD",
            torch.optim.ASGD,
            defaults={"lr": 0.03},
            per_batch_size={1: {"lr": 0.001}, 10: {"lr": 0.01}},
            elementwise=True,
            foreach=True,
            dtype_unreliable={"bfloat16": {1: "bfloat16 rounds its small steps: 26 of 32 seeds converged"}},
        ),
        OptimizerInfo(
            "lbfgs",
            "LBFGS",
            torch.optim.LBFGS,
            defaults={"lr": 1.0},
            per_batch_size={1: {"max_iter": 1}, 10: {"max_iter": 1, "history_size": 3}},
            unreliable={
                1: "full-batch method: converged on 176 of 200 seeds at batch size 1",
                10: "full-batch method: converged on 199 of 200 seeds at batch size 10",
                50: "full-batch method: worst intercept error 0.295 of 0.3 over 200 seeds at batch size 50",
            },
            needs_closure=True,
            note="curvature pairs from different mini-batches mislead it; one inner iteration "
            "(and a short history at batch size 10) helps most seeds",
        ),
        OptimizerInfo(
            "muon",
            "Muon",
            _muon,
            defaults={"lr": 0.1, "weight_decay": 0.0, "companion_lr": 0.1},
            per_batch_size={1: {"lr": 0.01, "companion_lr": 0.01}, 10: {"lr": 0.02}},
            epochs={10: 100, 100: 300},
            matrix_only=True,
            note="the 1-D bias is trained by a companion Adam (companion_lr)",
            dtype_failures=_bfloat16_stalls(1, 10),
        ),
        OptimizerInfo(
            "nadam",
            "NAdam",
            torch.optim.NAdam,
            defaults={"lr": 0.3},
            per_batch_size={1: {"lr": 0.03}, 50: {"lr": 1.0}, 100: {"lr": 0.1}},
            epochs={100: 300},
            elementwise=True,
            foreach=True,
            dtype_failures=_bfloat16_stalls(1, 100),
        ),
        OptimizerInfo(
            "radam",
            "RAdam",
            torch.optim.RAdam,
            defaults={"lr": 0.1, "betas": (0.9, 0.9)},
            per_batch_size={1: {"lr": 0.1, "betas": (0.9, 0.999)}, 10: {"lr": 0.01}},
            elementwise=True,
            foreach=True,
            note="its first steps are unadapted momentum SGD, which overshoots at large batches "
            "unless beta2 is short (0.9) so the adaptive phase starts with a settled variance",
            dtype_failures=_bfloat16_stalls(1, 10),
        ),
        OptimizerInfo(
            "rmsprop",
            "RMSprop",
            torch.optim.RMSprop,
            defaults={"lr": 0.1},
            per_batch_size={1: {"lr": 0.01}, 100: {"lr": 0.3}},
            elementwise=True,
            foreach=True,
        ),
        OptimizerInfo(
            "rprop",
            "Rprop",
            torch.optim.Rprop,
            defaults={"lr": 1.0},
            per_batch_size={1: {"lr": 0.01, "step_sizes": (1e-6, 0.05)}, 10: {"lr": 0.3}, 100: {"lr": 3.0}},
            unreliable={1: "sign-based steps: converged on 198 of 200 seeds at batch size 1"},
            elementwise=True,
            foreach=True,
            note="its step sizes follow gradient signs, which single samples flip; capping the "
            "step at 0.05 keeps batch size 1 stable on most seeds",
        ),
        OptimizerInfo(
            "sgd",
            "SGD",
            torch.optim.SGD,
            defaults={"lr": 0.01},
            per_batch_size={1: {"lr": 0.001}, 100: {"lr": 0.03}},
            elementwise=True,
            foreach=True,
            fused=True,
            dtype_unreliable={"bfloat16": {1: "bfloat16 rounds its small steps: 26 of 32 seeds converged"}},
        ),
    ]
)
"""The default registry: every supported ``torch.optim`` optimizer, tuned for the line."""

UNSUPPORTED = MappingProxyType(
    {
        "SparseAdam": "needs sparse gradients, and nn.Linear's gradients are dense",
    }
)
"""``torch.optim`` classes deliberately left out of the registry, with the reason."""

SEED_PROFILE = Registry(
    [
        OptimizerInfo("seed.adam", "Adam", torch.optim.Adam, defaults={"lr": 0.01}, epochs={1: 20}),
        OptimizerInfo("seed.sgd", "SGD", torch.optim.SGD, defaults={"lr": 0.01}, epochs={1: 20}),
    ]
)
"""The tutorial's own comparison: SGD and Adam at lr 0.01, batch size 1, 20 epochs, no
shuffle, each optimizer built for its own model (the tutorial's listing reused one)."""
