"""Optimizers for testing the benchmark module itself, registered through its hook.

``SABOTAGED`` are deliberately broken: in a pytester run of the real benchmark
module, the same assertion code that guards the default matrix has to report
each of them as failing. ``recording_sgd`` remembers every parameter it was
built for, to show that each round gets a fresh model.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from optbench import OPTIMIZERS, Case, OptimizerInfo


class DoNothing(torch.optim.Optimizer):
    """Computes nothing and moves nothing: a step that silently does no work."""

    def __init__(self, params, lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        return None


def wrong_sign(params, lr: float) -> torch.optim.SGD:
    """Gradient ascent: SGD stepping up the gradient instead of down."""
    return torch.optim.SGD(params, lr=lr, maximize=True)


def other_model(params, lr: float) -> torch.optim.SGD:
    """The tutorial's bug: an optimizer built for another model's parameters."""
    return torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=lr)


def _timid(name: str) -> OptimizerInfo:
    """``name`` from the default registry with every learning rate 100x too small.

    Each batch size's lr is the one the registry tunes on the line there, divided by 100.
    """
    info = OPTIMIZERS[name]
    cases = {("line", bs): Case({"lr": info.hyperparams(bs)["lr"] / 100}) for bs in (1, 10, 50, 100)}
    return OptimizerInfo(f"timid.{name}", info.torch_name, info.factory, defaults=info.defaults, cases=cases)


_SGD_LR = {("line", bs): Case({"lr": OPTIMIZERS["sgd"].hyperparams(bs)["lr"]}) for bs in (1, 10, 50, 100)}
"""SGD's tuned learning rate at each default batch size, as cases of the line."""

SABOTAGED = [
    OptimizerInfo("broken.noop", None, DoNothing, cases=_SGD_LR),
    OptimizerInfo("broken.wrong_sign", None, wrong_sign, cases=_SGD_LR),
    OptimizerInfo("broken.other_model", None, other_model, cases=_SGD_LR),
    _timid("sgd"),
    _timid("adam"),
]
"""Each must fail the benchmark's convergence check at every batch size."""


BUILT: list[list[torch.nn.Parameter]] = []
"""The parameters each ``recording_sgd`` was built for, in order (kept alive, so ids stay unique)."""


def recording_sgd(params, lr: float) -> torch.optim.SGD:
    """Plain SGD that records the parameters it was given."""
    params = list(params)
    BUILT.append(params)
    return torch.optim.SGD(params, lr=lr)


RECORDING = OptimizerInfo("recording", None, recording_sgd, cases=_SGD_LR)


class Sleepy(torch.optim.SGD):
    """SGD that sleeps a millisecond per step: the same fit, many times slower at large batches."""

    def step(self, closure=None):
        time.sleep(0.001)
        return super().step(closure)


def as_sgd(info: OptimizerInfo) -> OptimizerInfo:
    """``info`` under the name ``sgd``, so that it replaces SGD in a run."""
    return OptimizerInfo("sgd", "SGD", info.factory, defaults=info.defaults, cases=info.cases)


REPLACEMENTS = {info.name: as_sgd(info) for info in SABOTAGED} | {
    "sleepy": OptimizerInfo("sgd", "SGD", Sleepy, cases=_SGD_LR)
}
"""Stand-ins for SGD, by name, for runs that must look like the default SGD run to a gate."""
