"""Proving an added optimizer's update elementwise before its seeds run as replicas.

Seeds run as replicas of one vectorised run (``optbench.engine.replicas``) only where the
optimizer's update is elementwise: each replica then ends exactly where its seed alone ends.
The built-in entries' flags are proven by optbench's own tests (``tests/test_replicas.py``). An
optimizer an author brings is proven here instead, on short throwaway runs, bit for bit:

1. the engine's own path: two seeds of the line stacked as replicas against the same two seeds
   trained one after another, every step's loss, every epoch's loss and every trained parameter;
2. the optimizer alone on tensors shaped as a small network's (``SHAPES``): two replicas stacked
   along a first dimension against each stepped on its own, with the same seeded gradients, so
   an update that mixes a tensor's elements (a norm, a factored or orthogonalised matrix) mixes
   the replicas too and shows, where the line's 1 x 1 weight would hide it.

A claim that fails is an error; an optimizer that did not claim it and passes is vectorised all
the same, so it gets as many seeds as the built-ins.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from optbench.engine import Fitted, Vectorised, fit, prepare, replicas
from optbench.optimizers.registry import OptimizerInfo, Registry
from optbench.optimizers.specs import USER_ERRORS, SpecError, raised
from optbench.problems import LINE

BATCH_SIZE = 10
EPOCHS = 2
"""The engine's throwaway run: 20 steps at batch size 10 on the line's 100 points, enough for state
that builds up over steps (moments, step counts) to act."""
SEEDS = (0, 1)
"""The two seeds stacked."""
SHAPES = ((16, 1), (16,), (1, 16), (1,))
"""The tensors of the optimizer-alone run: a 1-16-1 network's weights and biases."""
STEPS = 20
"""Steps of the optimizer-alone run, each with fresh seeded gradients."""


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
    """Whether ``info``'s seeds may run as replicas, from the two throwaway runs (bit for bit).

    Optimizers whose seeds never run as replicas (they need a closure or the gradients' graph)
    are not proven: nothing would use the proof.

    Raises:
        Exception: whatever the optimizer raised while it trained (the caller words it).
    """
    if not replicas.applies(
        elementwise=True, needs_closure=info.needs_closure, dtype="float32", create_graph=info.create_graph
    ):
        return Proof(False, "its seeds never run as replicas (it needs a closure or create_graph)")
    scenario = info.scenario(BATCH_SIZE, problem=LINE, seed=SEEDS[0], seeds=len(SEEDS), epochs=EPOCHS)
    stacked = prepare(dataclasses.replace(scenario, elementwise=True))
    if not isinstance(stacked, Vectorised):  # pragma: no cover - the line's model always stacks
        return Proof(False, "its replicas could not be stacked")
    together = fit(stacked)
    alone = fit(prepare(dataclasses.replace(scenario, elementwise=False)))
    found = _compare(together, alone)
    return found if not found.proven else _stepped_alone(info)


def _stepped_alone(info: OptimizerInfo) -> Proof:
    """Two replicas of ``SHAPES`` stacked against each on its own, with the same seeded gradients."""
    generator = torch.Generator().manual_seed(0)
    count = len(SEEDS)
    starts = [[torch.randn(shape, generator=generator) for shape in SHAPES] for _ in range(count)]
    grads = [
        [[torch.randn(shape, generator=generator) for shape in SHAPES] for _ in range(count)]
        for _ in range(STEPS)
    ]
    hyperparams = info.hyperparams(BATCH_SIZE, problem=LINE)
    stacked = [nn.Parameter(torch.stack([start[i] for start in starts])) for i in range(len(SHAPES))]
    _steps(
        info,
        hyperparams,
        stacked,
        [[torch.stack([g[i] for g in step]) for i in range(len(SHAPES))] for step in grads],
    )
    for replica in range(count):
        own = [nn.Parameter(tensor.clone()) for tensor in starts[replica]]
        _steps(info, hyperparams, own, [step[replica] for step in grads])
        for index, (mine, theirs) in enumerate(zip(own, stacked, strict=True)):
            if not _same(mine, theirs[replica]):
                gap = (mine.detach().double() - theirs.detach()[replica].double()).abs().max().item()
                shape = "x".join(map(str, SHAPES[index]))
                return Proof(
                    False, f"stepped alone, a {shape} tensor of replica {replica} differs by up to {gap:.3g}"
                )
    return Proof(True)


def _steps(
    info: OptimizerInfo,
    hyperparams: dict[str, object],
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


def _compare(together: Fitted, alone: Fitted) -> Proof:
    """The first difference, bit for bit, between each seed's replica and its own run."""
    for replica, single in zip(together.seeds, alone.seeds, strict=True):
        seed = single.scenario.seed
        steps = min(replica.losses.shape[0], single.losses.shape[0])
        epochs_differ = not _same(torch.tensor(replica.epoch_values), torch.tensor(single.epoch_values))
        if not _same(replica.losses, single.losses) or epochs_differ:
            first = next(
                (step for step in range(steps) if not _same(replica.losses[step], single.losses[step])), steps
            )
            return Proof(False, f"seed {seed}'s loss differs from step {first + 1} on")
        ran = {name: param.detach().clone() for name, param in single.model().named_parameters()}
        for name, param in replica.model().named_parameters():  # valid until the next replica's
            if not _same(param, ran[name]):
                gap = (param.detach().double() - ran[name].double()).abs().max().item()
                return Proof(False, f"seed {seed}'s {name} differs by up to {gap:.3g}")
    return Proof(True)


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
    hyperparams = sorted(info.hyperparams(BATCH_SIZE, problem=LINE).items())
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
                    f"{where}: proving its elementwise claim ran past {seconds:g} s on throwaway runs of "
                    f"{EPOCHS * 10} and {STEPS} steps; fix the optimizer or drop elementwise"
                ) from None
            said[name] = f"{name}: not proven elementwise (its throwaway runs ran past {seconds:g} s)"
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
                f"{where}: it claims elementwise, but two stacked replicas do not match two separate runs "
                f"bit for bit ({proof.reason}); drop elementwise"
            )
        else:
            said[name] = f"{name}: not elementwise ({proof.reason}); its seeds run one after another"
    return registry.with_entries(entries, replace=True), said
