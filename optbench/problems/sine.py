"""A small nonconvex network: a 1-16-1 tanh MLP fitting a noisy sine on the tutorial's x grid.

``y = sin(x) + 0.1 N(0, 1)`` at ``x = arange(-5, 5, 0.1)`` (100 points), under MSE. The loss has
many minima (any permutation of the hidden units, and worse ones), so the reference is the best loss
that long float64 L-BFGS runs from several starts found on that seed's data: it is cached in
``sine_reference.json`` for the seeds the suite and its calibration train, and solved (slowly) for
any other. The cache is the reference: L-BFGS over 3000 iterations amplifies rounding, so a
recomputation lands on the cached value only on the build that made it (same torch, CPU and MKL
mode; under ``MKL_CBWR=COMPATIBLE`` seed 0's best run ends 5% higher), and ``best_loss`` runs on the
caller's threads (the regenerating command sets one per process). Its parameters are not kept: a
fit's distance to one of many equivalent minima says nothing, so the record's ``distance`` is NaN
here.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

from optbench.problems.base import SUITE_ROUNDS, Data, Metric, Problem, Reference, cached

HIDDEN = 16
NOISE = 0.1
SIZE = 100

STARTS = 4
"""L-BFGS runs per seed's reference, each from its own initialisation."""
ITERATIONS = 3000
"""L-BFGS iterations per run (strong Wolfe line search, float64)."""

REFERENCE_FILE = "sine_reference.json"
"""The cached references, packaged beside this module: ``python -m optbench.problems.sine`` rewrites it."""
CACHED_SEEDS = 128
"""Seeds 0..127 are cached: the matrix's 32 and the calibration's 128."""


def sine_data(seed: int) -> Data:
    """The tutorial's 100 x values and ``sin(x)`` plus noise drawn from ``seed``."""
    x = torch.arange(-5.0, 5.0 - 0.05, 0.1).view(-1, 1)
    generator = torch.Generator().manual_seed(seed)
    return x, torch.sin(x) + NOISE * torch.randn(x.shape, generator=generator)


def mlp(seed: int) -> nn.Sequential:
    """``Linear(1, 16) -> tanh -> Linear(16, 1)``, PyTorch's default initialisation seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(1, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1))


def best_loss(x: torch.Tensor, y: torch.Tensor, starts: int = STARTS, iterations: int = ITERATIONS) -> float:
    """The lowest full-data MSE that ``starts`` float64 L-BFGS runs of ``iterations`` each reach."""
    losses = [_lbfgs_loss(x, y, 10_000 + start, iterations) for start in range(starts)]
    finite = [loss for loss in losses if loss == loss]  # NaN never wins
    return min(finite, default=float("inf"))


def _lbfgs_loss(x: torch.Tensor, y: torch.Tensor, seed: int, iterations: int) -> float:
    """The full-data MSE one float64 L-BFGS run from ``mlp(seed)`` ends at."""
    xs, ys = x.detach().to("cpu", torch.float64), y.detach().to("cpu", torch.float64)
    model = mlp(seed).double()
    optimizer = torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=iterations,
        history_size=50,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.mse_loss(model(xs), ys)
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float(F.mse_loss(model(xs), ys))


@cache
def _cached_losses() -> dict[bytes, float]:
    text = resources.files("optbench.problems").joinpath(REFERENCE_FILE).read_text()
    saved = json.loads(text)
    return {bytes.fromhex(key): float(value) for key, value in saved["losses"].items()}


def _key(y: torch.Tensor) -> bytes:
    """The cache's key of a seed's data: its targets in float32, as bytes (the x grid is fixed)."""
    return y.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()


def _digest(y: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(_key(y)).hexdigest()


@cached
def sine_reference(x: torch.Tensor, y: torch.Tensor) -> Reference:
    """The best loss found on the data: from ``REFERENCE_FILE`` where cached, else solved now."""
    found = _cached_losses().get(bytes.fromhex(_digest(y)))
    loss = best_loss(x, y) if found is None else found
    return Reference(loss=loss, params=())


SINE = Problem(
    name="sine",
    data=sine_data,
    model=mlp,
    loss=F.mse_loss,
    reference=sine_reference,
    metrics=(Metric("excess_loss", "excess MSE", bound=0.02, tolerance=0.005),),
    batch_sizes=(10,),
    epochs={10: 100},
    rounds=SUITE_ROUNDS,
)


def main(argv: list[str] | None = None) -> int:
    """Solves seeds 0..CACHED_SEEDS-1 and writes ``REFERENCE_FILE`` beside this module.

    ``python -m optbench.problems.sine [WORKERS]``: WORKERS processes (default: one per CPU).
    """
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    from optbench.files import write_atomic

    args = sys.argv[1:] if argv is None else argv
    workers = int(args[0]) if args else None
    torch.set_num_threads(1)
    with ProcessPoolExecutor(workers) as pool:
        losses = list(pool.map(_solve, range(CACHED_SEEDS)))
    saved = {
        "format": 1,
        "command": "python -m optbench.problems.sine",
        "starts": STARTS,
        "iterations": ITERATIONS,
        "losses": {digest: loss for digest, loss in losses},
    }
    path = Path(__file__).with_name(REFERENCE_FILE)
    write_atomic(path, json.dumps(saved, indent=1) + "\n", fix="check the package folder is writable")
    print(f"wrote {len(losses)} references to {path}", file=sys.stderr)
    return 0


def _solve(seed: int) -> tuple[str, float]:
    torch.set_num_threads(1)
    x, y = sine_data(seed)
    return _digest(y), best_loss(x, y)


if __name__ == "__main__":
    raise SystemExit(main())
