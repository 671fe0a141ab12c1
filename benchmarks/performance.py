"""optbench's own speed, measured side by side in one run, written to ``docs/performance.md``.

Run: ``python benchmarks/performance.py [--repeats 11] [--suite] [--out docs/performance.md]``.

Every comparison times its variants back to back, one repeat after another, so
the machine's drift touches them alike; medians and their ratios are reported.

- **seeds**: one seed against 32 and 64 seeds trained as replicas of one
  vectorised run (SGD and Adam, batch size 1, the registry's settings).
- **loops**: the engine against the tutorial's loop (a ``DataLoader`` and
  ``loss.item()`` every step) and a minimal hand-written loop, on the seed profile
  (SGD and Adam at lr 0.01) at batch sizes 1 and 100.
- **sweep**: a 13-point x 32-seed learning-rate sweep stacked as one run against one
  32-seed run, per elementwise optimizer at batch sizes 1 and 100, and (with
  ``--suite``) the whole line sweep, ``python -m optbench.tune --tune-seeds auto``.
- **harness**: pytest-benchmark's median for a scenario against the same
  training timed by hand with ``time.perf_counter``.
- **suite** (``--suite``, several minutes): the wall time of ``pytest optbench/benchmarks``
  (what ``optbench`` runs) over the default matrix and smaller or larger ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from optbench import OPTIMIZERS, SEED_PROFILE, LineDataset, Scenario, fit, linear, prepare
from optbench.engine import replicas, summarise
from optbench.engine.sweep import prepare_points
from optbench.problems import LINE
from optbench.tune.grid import DEFAULT_GRID
from optbench.tune.sweep import Job, sweep_case

ROOT = Path(__file__).resolve().parents[1]


def interleaved(variants: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median seconds of each variant over ``repeats`` rounds, variants taking turns (after a warm-up)."""
    for variant in variants.values():
        variant()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, variant in variants.items():
            times[name].append(variant())
    return {name: statistics.median(values) for name, values in times.items()}


def engine(scenario: Scenario) -> float:
    """The timed part only, as the benchmark times it: ``fit`` on a prepared scenario."""
    ready = prepare(scenario)
    start = time.perf_counter()
    fit(ready)
    return time.perf_counter() - start


def tutorial(scenario: Scenario) -> float:
    """The tutorial's listing: a ``DataLoader`` over the data set and ``.item()`` every step."""
    model = linear(1)
    optimizer = scenario.optimizer(model.parameters())
    criterion = torch.nn.MSELoss()
    loader = DataLoader(dataset=LineDataset(seed=0), batch_size=scenario.batch_size)
    losses = []
    start = time.perf_counter()
    for _ in range(scenario.epochs):
        for x, y in loader:
            loss = criterion(model(x), y)
            losses.append(loss.item())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def minimal(scenario: Scenario) -> float:
    """The same steps on tensor slices, recording nothing."""
    data = LineDataset(seed=0)
    model = linear(1)
    optimizer = scenario.optimizer(model.parameters())
    batches = list(zip(data.x.split(scenario.batch_size), data.y.split(scenario.batch_size), strict=True))
    start = time.perf_counter()
    for _ in range(scenario.epochs):
        for x, y in batches:
            optimizer.zero_grad()
            F.mse_loss(model(x), y).backward()
            optimizer.step()
    return time.perf_counter() - start


def seeds_section(repeats: int) -> list[str]:
    lines = [
        "| optimizer, batch size 1 | 1 seed | 32 seeds | 64 seeds | 32 / 1 | 64 / 1 | 32 one after another |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("sgd", "adam"):
        info = OPTIMIZERS[name]
        variants = {count: info.scenario(1, seeds=count) for count in (1, 32, 64)}
        median = interleaved({str(count): lambda s=s: engine(s) for count, s in variants.items()}, repeats)
        one, many, more = median["1"], median["32"], median["64"]
        lines.append(
            f"| {name} | {one * 1e3:.0f} ms | {many * 1e3:.0f} ms | {more * 1e3:.0f} ms | "
            f"{many / one:.2f}x | {more / one:.2f}x | {32 * one:.1f} s (estimated: 32 x 1 seed) |"
        )
    prepare_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        prepare(OPTIMIZERS["adam"].scenario(1, seeds=32))
        prepare_times.append(time.perf_counter() - start)
    lines.append("")
    lines.append(
        f"Preparing 32 replicas (stacking the models, tracing the step; untimed set-up in the "
        f"benchmark) takes {statistics.median(prepare_times) * 1e3:.0f} ms."
    )
    return lines


SWEEP_REPEATS = 5
"""Repeats of the sweep comparisons: 11 optimizers x 2 batch sizes x 4 variants take a while."""


def stacked_sweep(job: Job) -> float:
    """The timed part of a stacked sweep, as ``engine`` times one run: training every point once."""
    stacked = prepare_points(job.points())
    assert stacked is not None, job.name
    start = time.perf_counter()
    replicas.train(stacked.replicas)
    return time.perf_counter() - start


def sweep_section(repeats: int) -> list[str]:
    repeats = min(repeats, SWEEP_REPEATS)
    lines = [
        f"Training only (the benchmark's timed part), {repeats} interleaved repeats; end to end adds "
        "preparing (stacking, tracing) and building the records.",
        "",
        "| optimizer | batch size | one 32-seed run | 13 x 32 sweep, stacked | sweep / run "
        "| end to end: sweep / run | point by point (13 runs) |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for name in [name for name, info in OPTIMIZERS.items() if info.elementwise]:
        for batch_size in (1, 100):
            job = Job(OPTIMIZERS[name], LINE, batch_size, grid=DEFAULT_GRID, seeds=32)
            one = job.base()

            def whole_run(scenario: Scenario = one) -> float:
                start = time.perf_counter()
                summarise(fit(prepare(scenario)))
                return time.perf_counter() - start

            def whole_sweep(job: Job = job) -> float:
                start = time.perf_counter()
                sweep_case(job)
                return time.perf_counter() - start

            median = interleaved(
                {
                    "run": lambda s=one: engine(s),
                    "sweep": lambda j=job: stacked_sweep(j),
                    "whole run": whole_run,
                    "whole sweep": whole_sweep,
                },
                repeats,
            )
            ratio = median["sweep"] / median["run"]
            ratios.append(ratio)
            lines.append(
                f"| {name} | {batch_size} | {median['run'] * 1e3:.0f} ms | {median['sweep'] * 1e3:.0f} ms | "
                f"{ratio:.2f}x | {median['whole sweep'] / median['whole run']:.2f}x | "
                f"{13 * median['run'] * 1e3:.0f} ms (13x, estimated) |"
            )
    worst, middle = max(ratios), statistics.median(ratios)
    lines += ["", f"Worst sweep / run ratio: {worst:.2f}x; median {middle:.2f}x.", ""]
    return lines


def line_sweep_section() -> list[str]:
    command = [sys.executable, "-m", "optbench.tune", "--tune-seeds", "auto"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    cases = sum(1 for line in done.stdout.splitlines() if ": lr " in line or ": no lr" in line)
    return [
        f"`python -m optbench.tune --tune-seeds auto` (every default optimizer x the line's 4 batch sizes "
        f"x 13 learning rates; 32 seeds for the elementwise optimizers, 1 for the others; all cores): "
        f"{cases} cases in {seconds:.0f} s, exit status {done.returncode}.",
    ]


def loops_section(repeats: int) -> list[str]:
    lines = [
        "| seed profile | steps | tutorial | engine | minimal | tutorial / engine | engine / minimal |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch_size in (1, 100):
        for name in SEED_PROFILE:
            scenario = SEED_PROFILE[name].scenario(batch_size)
            median = interleaved(
                {
                    "tutorial": lambda s=scenario: tutorial(s),
                    "engine": lambda s=scenario: engine(s),
                    "minimal": lambda s=scenario: minimal(s),
                },
                repeats,
            )
            steps = scenario.epochs * -(-100 // batch_size)
            lines.append(
                f"| {name}, batch size {batch_size} | {steps} | {median['tutorial'] * 1e3:.1f} ms | "
                f"{median['engine'] * 1e3:.1f} ms | {median['minimal'] * 1e3:.1f} ms | "
                f"{median['tutorial'] / median['engine']:.2f}x | "
                f"{median['engine'] / median['minimal']:.3f}x |"
            )
    return lines


def pytest_median(test: str, case: str, rounds: int, extra: Sequence[str] = ()) -> float:
    """pytest-benchmark's median for one case, from the JSON it saves."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.json"
        command = [
            sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider", "-k", case,
            f"--benchmark-min-rounds={rounds}", f"--benchmark-json={path}", "--optbench-devices=cpu", *extra,
        ]  # fmt: skip
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"pytest failed:\n{done.stdout}{done.stderr}")
        (benchmark,) = json.loads(path.read_text())["benchmarks"]
        return float(benchmark["stats"]["median"])


def harness_section(repeats: int) -> list[str]:
    lines = [
        "| scenario | pytest-benchmark median | hand-timed median | ratio |",
        "|---|---|---|---|",
    ]
    cases = [
        ("adam-bs1-cpu (32 seeds)", "optbench/benchmarks/test_matrix.py", "adam-bs1-cpu",
         OPTIMIZERS["adam"].scenario(1, seeds=32)),
        ("seed.adam-bs1-cpu (1 seed)", "optbench/benchmarks/test_seed_profile.py",
         "test_seed_profile and seed.adam",
         SEED_PROFILE["seed.adam"].scenario(1)),
    ]  # fmt: skip
    threads = ["--optbench-optimizers=adam", "--optbench-batch-sizes=1"]
    for label, test, case, scenario in cases:
        bench, hand = [], []
        for _ in range(3):  # alternate the two, so drift touches both
            bench.append(pytest_median(test, case, repeats, threads))
            hand.append(statistics.median(engine(scenario) for _ in range(repeats)))
        b, h = statistics.median(bench), statistics.median(hand)
        lines.append(f"| {label} | {b * 1e3:.1f} ms | {h * 1e3:.1f} ms | {b / h:.3f} |")
    return lines


LINE_ONLY = ["--optbench-problems=line"]

SUITES = (
    ("every problem: the line's 56 cases and the suite's 84, seeds auto", []),
    ("the line alone, as before the suite: 14 optimizers x 4 batch sizes, seeds auto", LINE_ONLY),
    ("the line, one seed each", [*LINE_ONLY, "--optbench-seeds=1"]),
    ("the line, 14 optimizers x batch size 1, seeds auto", [*LINE_ONLY, "--optbench-batch-sizes=1"]),
    ("the line, 14 optimizers x batch size 100, seeds auto", [*LINE_ONLY, "--optbench-batch-sizes=100"]),
    (
        "the line, adam,sgd x 4 batch sizes, 1 seed",
        [*LINE_ONLY, "--optbench-optimizers=adam,sgd", "--optbench-seeds=1"],
    ),
    (
        "the line, adam,sgd x 4 batch sizes, 32 seeds",
        [*LINE_ONLY, "--optbench-optimizers=adam,sgd", "--optbench-seeds=32"],
    ),
    (
        "the line, adam,sgd x 4 batch sizes, 128 seeds",
        [*LINE_ONLY, "--optbench-optimizers=adam,sgd", "--optbench-seeds=128"],
    ),
)


def suite_section() -> list[str]:
    lines = ["| `pytest optbench/benchmarks` with | tests | wall time |", "|---|---|---|"]
    for label, options in SUITES:
        # The modules `optbench` runs, named by path: `python -m optbench` from the checkout's root
        # would also load (and time) the test suite's tests/conftest.py.
        command = [sys.executable, "-m", "pytest", "optbench/benchmarks", "-q", "-p", "no:cacheprovider"]
        command += options
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()
        summary = summary.strip("= ").split(" in ")[0]
        lines.append(f"| {label} (`{' '.join(options) or 'no options'}`) | {summary} | {seconds:.0f} s |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Measures, prints Markdown, and writes it to ``--out`` when given."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=11, help="interleaved repeats per comparison (default 11)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads in this process (default 1)")
    parser.add_argument("--suite", action="store_true", help="also time whole runs of the matrix")
    parser.add_argument("--out", type=Path, help="write the Markdown here as well")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    header = (
        f"Measured with torch {torch.__version__} on {platform.machine()} "
        f"({os.cpu_count()} cores), {args.threads} torch thread(s) in the timing process, "
        f"{args.repeats} interleaved repeats, medians."
    )
    sections = [("Many seeds at the cost of one", seeds_section(args.repeats))]
    sections.append(("Learning-rate sweeps at the cost of a few runs", sweep_section(args.repeats)))
    sections.append(("The engine against the tutorial's loop", loops_section(args.repeats)))
    sections.append(("Harness overhead", harness_section(args.repeats)))
    if args.suite:
        sections.append(("The suite's cost", suite_section()))
        sections.append(("The whole line sweep", line_sweep_section()))
    text = [header, ""]
    for title, lines in sections:
        text += [f"### {title}", "", *lines, ""]
    output = "\n".join(text)
    print(output)
    if args.out is not None:
        args.out.write_text(output, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
