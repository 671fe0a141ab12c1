"""The engine's training loop against the tutorial's loop and a minimal hand-written one.

Run: ``python benchmarks/compare_loops.py [--repeats 15]``. Each repeat times the
three loops back to back on the seed profile (batch size 1, 20 epochs, 2000
steps), each with a fresh model and optimizer, so the machine's drift touches
all three alike; the medians and their ratios are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from optbench import SEED_PROFILE, LineDataset, linear, prepare, train


def tutorial_loop(name: str) -> float:
    """The tutorial's listing: a DataLoader of single samples and ``.item()`` every step."""
    data = LineDataset(seed=0)
    model = linear(1)
    optimizer = SEED_PROFILE[name].scenario(1).optimizer(model.parameters())
    criterion = torch.nn.MSELoss()
    loader = DataLoader(dataset=data, batch_size=1)
    losses = []
    start = time.perf_counter()
    for _ in range(20):
        for x, y in loader:
            y_hat = model(x)
            loss = criterion(y_hat, y)
            losses.append(loss.item())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def minimal_loop(name: str) -> float:
    """The same 2000 steps on tensor slices, recording nothing."""
    data = LineDataset(seed=0)
    model = linear(1)
    optimizer = SEED_PROFILE[name].scenario(1).optimizer(model.parameters())
    batches = list(zip(data.x.split(1), data.y.split(1), strict=True))
    start = time.perf_counter()
    for _ in range(20):
        for x, y in batches:
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def engine_loop(name: str) -> float:
    """optbench's engine: the timed part only, as the benchmark times it."""
    prepared = prepare(SEED_PROFILE[name].scenario(1))
    start = time.perf_counter()
    train(prepared)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the median time of each loop and the ratios, per optimizer."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repeats (default 15)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    loops: dict[str, Callable[[str], float]] = {
        "tutorial": tutorial_loop,
        "engine": engine_loop,
        "minimal": minimal_loop,
    }
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.repeats} repeats, 2000 steps each")
    header = ("optimizer", "tutorial", "engine", "minimal", "tutorial/engine", "engine/minimal")
    print("{:10} {:>10} {:>10} {:>10} {:>16} {:>15}".format(*header))
    for name in SEED_PROFILE:
        for loop in loops.values():  # warm-up
            loop(name)
        times: dict[str, list[float]] = {key: [] for key in loops}
        for _ in range(args.repeats):
            for key, loop in loops.items():
                times[key].append(loop(name))
        median = {key: statistics.median(values) for key, values in times.items()}
        print(
            f"{name:10} {median['tutorial'] * 1e3:8.1f}ms {median['engine'] * 1e3:8.1f}ms "
            f"{median['minimal'] * 1e3:8.1f}ms {median['tutorial'] / median['engine']:15.2f}x "
            f"{median['engine'] / median['minimal']:14.3f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
