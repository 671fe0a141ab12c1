"""Proving an added optimizer's update elementwise before its seeds run as replicas.

Seeds run as replicas of one vectorised run (``optbench.engine.replicas``) only where the
optimizer's update is elementwise: each replica then ends exactly where its seed alone ends.
The built-in entries' flags are proven by optbench's own tests (``tests/test_replicas.py``). An
optimizer an author brings is proven here instead, on a short throwaway run: two replicas of a
small network's tensors (``SHAPES``) stacked along a first dimension, as the engine stacks seeds,
against each stepped on its own, with the same seeded gradients, in training mode where it has
modes, compared bit for bit. An update that mixes a tensor's elements (a norm, a factored or
orthogonalised matrix) mixes the replicas too, and shows.

The gradients are given, not computed: on some CPUs a batched product and the same product alone
round differently in the last bit (MKL without ``MKL_CBWR=COMPATIBLE``), which would fail an
elementwise optimizer through no fault of its own. Each distinct set of keyword arguments the
optimizer has at the line's batch sizes is proven. A claim that fails is an error; an optimizer that
did not claim it and passes is vectorised all the same, so it gets as many seeds as the built-ins.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optbench.engine import replicas
from optbench.optimizers.registry import OptimizerInfo, Registry
from optbench.optimizers.specs import USER_ERRORS, SpecError, raised
from optbench.problems import LINE

REPLICAS = 2
"""The replicas stacked."""
SHAPES = ((1, 1), (1,), (16, 1), (16,), (1, 16))
"""The tensors stepped: the line's weight and bias, and a 1-16-1 network's."""
STEPS = 20
"""Steps of the throwaway run, each with fresh seeded gradients: enough for state that builds up over
steps (moments, step counts) to act."""


@dataclass(frozen=True)
class Proof:
    """What the throwaway run showed.

    Attributes:
        proven: two stacked replicas ended bit for bit where their seeds alone ended.
        reason: why not, where not proven (one phrase); empty where proven.
    """

    proven: bool
    reason: str = ""


def prove_elementwise(info: OptimizerInfo) -> Proof:
    """Whether ``info``'s seeds may run as replicas: stacked replicas against each run alone, bit for bit.

    Optimizers whose seeds never run as replicas (they need a closure or the gradients' graph)
    are not proven: nothing would use the proof.

    Raises:
        Exception: whatever the optimizer raised while it stepped (the caller words it).
    """
    if not replicas.applies(
        elementwise=True, needs_closure=info.needs_closure, dtype="float32", create_graph=info.create_graph
    ):
        return Proof(False, "its seeds never run as replicas (it needs a closure or create_graph)")
    settings = {
        repr(sorted(h.items())): h for h in (info.hyperparams(b, problem=LINE) for b in LINE.batch_sizes)
    }
    for hyperparams in settings.values():
        found = _stacked_against_alone(info, hyperparams)
        if not found.proven:
            return found
    return Proof(True)


def _stacked_against_alone(info: OptimizerInfo, hyperparams: Mapping[str, Any]) -> Proof:
    """``REPLICAS`` replicas of ``SHAPES`` stepped stacked, and each alone, with the same gradients."""
    generator = torch.Generator().manual_seed(0)
    starts = [[torch.randn(shape, generator=generator) for shape in SHAPES] for _ in range(REPLICAS)]
    grads = [
        [[torch.randn(shape, generator=generator) for shape in SHAPES] for _ in range(REPLICAS)]
        for _ in range(STEPS)
    ]
    stacked = [nn.Parameter(torch.stack([start[i] for start in starts])) for i in range(len(SHAPES))]
    together = [[torch.stack([g[i] for g in step]) for i in range(len(SHAPES))] for step in grads]
    _steps(info, hyperparams, stacked, together)
    differences = []  # (gap, shape, replica) of every tensor that differs in any bit
    for replica in range(REPLICAS):
        own = [nn.Parameter(tensor.clone()) for tensor in starts[replica]]
        _steps(info, hyperparams, own, [step[replica] for step in grads])
        for index, (mine, theirs) in enumerate(zip(own, stacked, strict=True)):
            if not _same(mine, theirs[replica]):
                gap = (mine.detach().double() - theirs.detach()[replica].double()).abs().nan_to_num(math.inf)
                differences.append((gap.max().item(), "x".join(map(str, SHAPES[index])), replica))
    if not differences:
        return Proof(True)
    gap, shape, replica = max(differences)
    by = f"by up to {gap:.3g}" if gap > 0 else "in its bits alone (a zero's sign or a NaN)"
    return Proof(
        False,
        f"stepped as stacked replicas, replica {replica}'s tensor of shape {shape} differs from its own "
        f"run {by}",
    )


def _steps(
    info: OptimizerInfo,
    hyperparams: Mapping[str, Any],
    params: list[nn.Parameter],
    grads: list[list[torch.Tensor]],
) -> None:
    """Steps a fresh optimizer over ``params`` once per entry of ``grads``, in training mode."""
    optimizer = info.factory(params, **hyperparams)
    if info.train_eval:
        optimizer.train()  # type: ignore[attr-defined]
    for step in grads:
        for param, grad in zip(params, step, strict=True):
            param.grad = grad.clone()
        optimizer.step()
    if info.train_eval:
        optimizer.eval()  # type: ignore[attr-defined]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit: same shape and dtype, and the same bytes (NaN where the other has that NaN)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    left, right = (t.detach().cpu().contiguous().reshape(-1).view(torch.uint8) for t in (a, b))
    return bool(torch.equal(left, right))


class ClaimError(SpecError):
    """An added optimizer claims ``elementwise`` and the throwaway runs disprove it (one line)."""


_proofs: dict[str, Proof] = {}
"""The proofs of this process by optimizer set-up (class, keyword arguments, flags): a session that
adds the same optimizer again (the tests' in-process runs) proves it once."""


def _proof_key(info: OptimizerInfo) -> str:
    hyperparams = [sorted(info.hyperparams(size, problem=LINE).items()) for size in LINE.batch_sizes]
    flags = (info.needs_closure, info.train_eval, info.create_graph)
    return repr(
        (
            getattr(info.factory, "__module__", ""),
            getattr(info.factory, "__qualname__", info.factory),
            hyperparams,
            flags,
        )
    )


PROOF_SECONDS = 30.0
"""The longest the throwaway runs of one optimizer may take (they take 0.1-1.5 s here): an optimizer
whose step hangs must not hang the run before any test's time limit applies."""


class ProofTimeout(BaseException):
    """The throwaway runs ran past their limit.

    A ``BaseException``, so that no ``except Exception`` in the optimizer's own code swallows it.
    """


@contextlib.contextmanager
def _limit(seconds: float | None) -> Iterator[None]:
    """Raises ``ProofTimeout`` in the block once ``seconds`` have passed.

    Where a timer signal can (POSIX, the main thread); elsewhere, or without ``seconds``, the block
    runs unlimited.
    """
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise ProofTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def prove_added(
    registry: Registry, names: Iterable[str], seconds: float | None = PROOF_SECONDS
) -> tuple[Registry, dict[str, str]]:
    """``registry`` with each of ``names`` proven elementwise or not, and one line per name saying which.

    An entry that passes is flagged ``elementwise`` and ``proven`` (its seeds run as replicas, and
    its records say ``elementwise: proven``); one that fails keeps its seeds one after another, as
    does one whose throwaway runs raise or run past ``seconds`` (``None``: no limit) without claiming it.

    Raises:
        ClaimError: an entry claims ``elementwise`` and fails, or raised or ran past ``seconds`` while
            it was proven.
    """
    entries, said = [], {}
    for name in names:
        info = registry[name]
        key = _proof_key(info)
        where = f"{name} ({info.note or 'added'})"
        try:
            with _limit(seconds):
                proof = _proofs[key] if key in _proofs else prove_elementwise(info)
        except ProofTimeout:
            if info.elementwise:
                raise ClaimError(
                    f"{where}: proving its elementwise claim ran past {seconds:g} s on a throwaway run of "
                    f"{STEPS} steps; fix the optimizer or drop elementwise"
                ) from None
            said[name] = f"{name}: not proven elementwise (its throwaway run ran past {seconds:g} s)"
            continue
        except USER_ERRORS as error:
            if info.elementwise:
                raise ClaimError(
                    f"{where}: proving its elementwise claim on a throwaway run raised {raised(error)}; "
                    "fix the optimizer or drop elementwise"
                ) from None
            said[name] = f"{name}: not proven elementwise (its throwaway run raised {raised(error)})"
            continue
        _proofs[key] = proof
        if proof.proven:
            entries.append(dataclasses.replace(info, elementwise=True, proven=True))
            said[name] = f"{name}: proven elementwise on a throwaway run; its seeds run as replicas"
        elif info.elementwise and not info.needs_closure and not info.create_graph:
            raise ClaimError(
                f"{where}: it claims elementwise, but stacked replicas do not match separate runs bit for "
                f"bit ({proof.reason}); drop elementwise"
            )
        else:
            said[name] = f"{name}: not elementwise ({proof.reason}); its seeds run one after another"
    return registry.with_entries(entries, replace=True), said
