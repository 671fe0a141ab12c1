"""Small optimizers of the kinds that need a driving protocol, written for the tests.

``AveragedSGD`` has modes, as schedule-free methods do: it steps one iterate and is
evaluated at another (the running mean of its iterates), and refuses to step in eval
mode. ``ExactStepGD`` takes a Hessian-vector product of the gradients, as AdaHessian-
and Sophia-style methods do, so it needs a backward with ``create_graph=True``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class AveragedSGD(torch.optim.Optimizer):
    """SGD trained at its iterate and evaluated at the running mean of its iterates (train/eval modes)."""

    def __init__(self, params, lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})
        self.training = False

    @torch.no_grad()
    def train(self) -> None:
        """Puts the training iterate back in the parameters."""
        if not self.training:
            for group in self.param_groups:
                for p in group["params"]:
                    if "iterate" in self.state[p]:
                        p.copy_(self.state[p]["iterate"])
        self.training = True

    @torch.no_grad()
    def eval(self) -> None:
        """Keeps the training iterate aside and puts the mean of the iterates in the parameters."""
        if self.training:
            for group in self.param_groups:
                for p in group["params"]:
                    state = self.state[p]
                    if "mean" in state:
                        state["iterate"] = p.clone()
                        p.copy_(state["mean"])
        self.training = False

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> None:
        if not self.training:
            raise RuntimeError("AveragedSGD is not in train mode when step is called; call train() first")
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.add_(p.grad, alpha=-group["lr"])
                state = self.state[p]
                state["count"] = count = state.get("count", 0) + 1
                mean = state.setdefault("mean", torch.zeros_like(p))
                mean.add_((p - mean) / count)


class ExactStepGD(torch.optim.Optimizer):
    """Steepest descent with the step a quadratic calls exact, ``lr * g.g / g.Hg``, from one Hessian-vector
    product of the gradients (so it needs them built with ``create_graph=True``)."""

    def __init__(self, params, lr: float = 1.0) -> None:
        super().__init__(params, {"lr": lr})

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            curvature = torch.autograd.grad(grads, params, grad_outputs=[g.detach() for g in grads])
            with torch.no_grad():
                gg = sum((g * g).sum() for g in grads)
                ghg = sum((g * h).sum() for g, h in zip(grads, curvature, strict=True))
                size = group["lr"] * gg / ghg if ghg > 0 else group["lr"]
                for p, g in zip(params, grads, strict=True):
                    p.sub_(size * g.detach())


class NormalisedSGD(torch.optim.Optimizer):
    """Not elementwise: each step is the gradient over its whole tensor's norm, so stacked replicas mix."""

    def __init__(self, params, lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad / (p.grad.norm() + 1e-12), alpha=-group["lr"])


class Exploding(torch.optim.SGD):
    """Raises on its third step, as a broken optimizer would mid-run."""

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> None:
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps == 3:
            raise ZeroDivisionError("third step")
        super().step(closure)
