"""Template: your own optimizer in optbench's matrix, with no edit to optbench.

Copy this file as conftest.py into the folder you run optbench in (your project's, say), then run there:
    optbench --optbench-optimizers=signsgd,sgd --benchmark-autosave && python -m optbench.report
"""

from collections.abc import Callable, Iterable

import torch

from optbench import Case, OptimizerInfo

pytest_plugins = ("optbench.plugin",)  # the --optbench-* options and the matrix


class SignSGD(torch.optim.Optimizer):
    """Your optimizer: any torch.optim.Optimizer subclass works. This one steps by -lr * sign(grad)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = closure() if closure is not None else None  # only needed if you set needs_closure
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])
        return loss


def pytest_optbench_optimizers() -> list[OptimizerInfo]:
    """optbench's hook: return registry entries to add (or, under an existing name, to replace)."""
    return [
        OptimizerInfo(
            "signsgd",  # the registry name and the first part of scenario ids (signsgd-bs10-cpu)
            None,  # the torch.optim class name it mirrors, if any
            SignSGD,  # called as SignSGD(model.parameters(), **hyper-parameters)
            defaults={"lr": 0.05},  # for every problem and batch size...
            # ...but where one lr does not fit all: a Case per (problem, batch size[, dtype]) key
            cases={("line", 1): Case({"lr": 0.005}), ("line", 100): Case({"lr": 0.1})},
            elementwise=True,  # per-element update: 32 seeds run as one (proven as the run starts)
            note="sign of the gradient, a fixed step",
        )
    ]
