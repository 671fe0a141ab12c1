"""Re-measures the convergence bounds: every default scenario over many seeds.

``python -m optbench.calibrate --seeds 200 --out docs/calibration.md`` regenerates
the committed calibration table of the line (the default problem; ``--problems``
names others); ``--optimizers`` and ``--batch-sizes`` narrow it. The seed profile
(the tutorial's SGD against Adam) is measured too, with the finding that the
seed-profile benchmark asserts.

``python -m optbench.calibrate --suite --out docs/calibration-suite.md --verdicts
optbench/optimizers/verdicts.json`` calibrates the suite (every other problem) at the
tuned settings over 128 seeds, each case as one multi-seed scenario, and writes the
verdicts the registry reads: which cases must converge and which may fail.

``python -m optbench.calibrate --dtypes float64,bfloat16 --seeds 32 --out
docs/calibration-dtypes.md`` calibrates other dtypes instead: each case trains its
seeds as one multi-seed scenario (replicas where the optimizer is elementwise).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch.nn.utils import vector_to_parameters

from optbench.engine import run
from optbench.files import (
    OutputError,
    check_output_file,
    exit_status,
    interrupts_raise,
    write_atomic,
    written,
)
from optbench.optimizers import verdicts
from optbench.optimizers.registry import OPTIMIZERS, SEED_PROFILE, Registry
from optbench.options import add_matrix_options, check_names
from optbench.problems import PROBLEMS, Metric, Problem, judged_against
from optbench.record import bounded, spread
from optbench.record.checks import DEFAULT_TOLERANCES, epochs_to_converge, failures
from optbench.scenario import Scenario

_PROFILES: dict[str, Registry] = {"default": OPTIMIZERS, "seed": SEED_PROFILE}


PROG = "python -m optbench.calibrate"

DRIFT_SEEDS = 20
"""Seeds of the float32 against float64 comparison that calibrates the run-to-run tolerances."""


def _scenario(profile: str, problem: Problem, name: str, batch_size: int, seed: int) -> Scenario:
    if profile == "float64":  # the same run in double precision: what rounding alone changes
        return OPTIMIZERS[name].scenario(batch_size, seed=seed, dtype="float64", problem=problem)
    return _PROFILES[profile][name].scenario(batch_size, seed=seed, problem=problem)


def reference_values(problem: Problem, seed: int) -> dict[str, float]:
    """The problem's metrics of its own reference solution on ``seed``'s data: the floor noise sets.

    The reference's parameters are loaded into a fresh model of the problem's, which the problem
    then measures as it measures a trained one (the line: the least-squares fit's own distance
    from the true line).
    """
    x, y = problem.seed_data(seed)
    reference = problem.reference(x, y)
    model = problem.model(seed)  # any start: its parameters are replaced by the reference's
    first = next(model.parameters())
    vector_to_parameters(torch.tensor(reference.params, dtype=first.dtype), model.parameters())
    target = judged_against(problem.truth, reference)
    return problem.evaluate(model, reference, target, final_loss=reference.loss)


def _one(job: tuple[str, str, str, int, int]) -> dict[str, object]:
    profile, problem_name, name, batch_size, seed = job
    problem = PROBLEMS[problem_name]
    record = run(_scenario(profile, problem, name, batch_size, seed))
    nan = float("nan")
    row: dict[str, object] = {
        "profile": profile,
        "problem": problem.name,
        "optimizer": name,
        "batch_size": batch_size,
        "seed": seed,
        "status": record["status"],
        "epoch1_loss": record["epoch_loss"][1] if len(record["epoch_loss"]) > 1 else nan,
        "epochs_to_converge": epochs_to_converge(record) or nan,
        "failures": "; ".join(failures(record)),
    }
    for metric in problem.table:
        value = record[metric.name]
        row[metric.name] = nan if value is None else value
    for metric_name, value in reference_values(problem, seed).items():
        row[f"reference_{metric_name}"] = value
    return row


def _init_worker() -> None:
    torch.set_num_threads(1)


def measure(
    problems: Sequence[Problem],
    names: Sequence[str],
    batch_sizes: Sequence[int] | None,
    seeds: int,
    workers: int,
    seed_profile: bool = True,
) -> pd.DataFrame:
    """One row per run: each (problem, optimizer, batch size, seed) of the matrix, then the seed profile.

    ``batch_sizes`` ``None`` takes each problem's own; either way clamped (``Problem.batch_sizes_for``).
    The cases that must converge also run in float64 on the first ``DRIFT_SEEDS`` seeds, to measure
    what rounding alone changes.
    """
    cases = [
        (problem, name, bs)
        for problem in problems
        for name in names
        for bs in problem.batch_sizes_for(batch_sizes)
    ]
    jobs = [("default", p.name, name, bs, seed) for p, name, bs in cases for seed in range(seeds)]
    if seed_profile:
        jobs += [
            ("seed", PROBLEMS.default.name, name, 1, seed) for name in SEED_PROFILE for seed in range(seeds)
        ]
    jobs += [
        ("float64", p.name, name, bs, seed)
        for p, name, bs in cases
        for seed in range(min(seeds, DRIFT_SEEDS))
        if not OPTIMIZERS[name].expected_failure(bs, problem=p)
    ]
    if workers <= 1:
        _init_worker()
        rows = [_one(job) for job in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            rows = pool.map(_one, jobs, chunksize=max(1, len(jobs) // (workers * 16)))
    return pd.DataFrame(rows)


def _worst(values: pd.Series) -> float:
    return values.max(skipna=False)


def summarise(runs: pd.DataFrame, problem: Problem) -> pd.DataFrame:
    """Worst value of each bounded metric per combination on ``problem``, with the margin under each bound."""
    judged = bounded(problem.table)
    table = (
        runs[(runs.profile != "float64") & (runs.problem == problem.name)]
        .groupby(["profile", "optimizer", "batch_size"], sort=True)
        .agg(
            seeds=("seed", "count"),
            converged=("status", lambda s: int((s == "converged").sum())),
            **{f"worst_{metric.name}": (metric.name, _worst) for metric in judged},
        )
        .reset_index()
    )
    for metric in judged:
        table[f"margin_{metric.name}"] = metric.bound - table[f"worst_{metric.name}"]
    table["in_the_matrix"] = [
        _expectation(_PROFILES[profile][name].expected_failure(batch_size, problem=problem))
        for profile, name, batch_size in zip(table.profile, table.optimizer, table.batch_size, strict=True)
    ]
    return table


def _expectation(expected: tuple[str, bool] | None) -> str:
    if expected is None:
        return "must converge"
    return "expected failure (strict)" if expected[1] else "may fail (non-strict xfail)"


def seed_finding(runs: pd.DataFrame) -> pd.DataFrame:
    """Per seed, SGD against Adam in the seed profile: loss after epoch 1 and epochs to converge."""
    seed_runs = runs[runs.profile == "seed"]
    wide = seed_runs.pivot(index="seed", columns="optimizer", values=["epoch1_loss", "epochs_to_converge"])
    wide.columns = [f"{metric}_{name.removeprefix('seed.')}" for metric, name in wide.columns]
    return wide.reset_index()


def gated(problem: Problem) -> tuple[Metric, ...]:
    """The problem's metrics that the gate compares, with their default tolerances."""
    return DEFAULT_TOLERANCES.gated({"metrics": problem.table})


def drift(runs: pd.DataFrame, problem: Problem) -> pd.DataFrame:
    """Per combination on ``problem``, the largest change of each gated metric from float32 to float64."""
    keys = ["optimizer", "batch_size", "seed"]
    mine = runs[runs.problem == problem.name]
    single = mine[mine.profile == "default"].set_index(keys)
    double = mine[mine.profile == "float64"].set_index(keys)
    joined = single.merge(double, left_index=True, right_index=True, suffixes=("_32", "_64"))
    names = [metric.name for metric in gated(problem)]
    changes = pd.DataFrame({name: (joined[f"{name}_64"] - joined[f"{name}_32"]).abs() for name in names})
    return changes.groupby(level=["optimizer", "batch_size"]).max().reset_index()


def _span(epochs: pd.Series) -> str:
    """``"3-7"``, with the seeds that never got there counted."""
    reached = epochs.dropna()
    text = f"{int(reached.min())}-{int(reached.max())}" if len(reached) else "never"
    missing = len(epochs) - len(reached)
    return text + (f" ({missing} seeds never)" if missing and len(reached) else "")


def _bounds(problem: Problem) -> str:
    return ", ".join(f"{metric.label} <= {metric.bound:g}" for metric in bounded(problem.table))


def _cells(row: object, judged: Sequence[Metric]) -> str:
    cells = []
    for metric in judged:
        worst = getattr(row, f"worst_{metric.name}")
        cells.append(f"{worst:.3f} ({metric.bound - worst:+.3f})" if math.isfinite(worst) else "inf")  # type: ignore[operator]
    return " | ".join(cells)


def _header(judged: Sequence[Metric], *first: str) -> list[str]:
    columns = [
        *first,
        "batch size",
        "converged",
        *(f"worst {m.label} (margin)" for m in judged),
        "in the matrix",
    ]
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def to_markdown(runs: pd.DataFrame, problems: Sequence[Problem], command: str) -> str:
    """The calibration report as committed in docs/calibration.md; ``command`` made it."""
    seeds = int(
        runs[runs.profile == "default"].groupby(["problem", "optimizer", "batch_size"]).seed.count().max()
    )
    lines = [
        "# Calibration of the convergence bounds",
        "",
        f"Generated by `{command}` (torch {torch.__version__}, CPU, float32, one thread per run; "
        f"seeds 0..{seeds - 1}).",
        "",
        "Each problem's bounds are its metric table's (`optbench.problems`). Each cell is the worst "
        "value over all seeds, with the margin left under the bound.",
    ]
    for problem in problems:
        judged = bounded(problem.table)
        table = summarise(runs, problem)
        mine = runs[runs.problem == problem.name]
        floor = ", ".join(f"{mine[f'reference_{m.name}'].max():.3f} in {m.label}" for m in judged)
        lines += [
            "",
            f"## {problem.name}",
            "",
            f"Bounds: {_bounds(problem)}.",
            "",
            f"Noise floor: the reference solution itself (the best fit to each seed's data) scores up to "
            f"{floor} over these seeds; no bound under that can hold.",
            "",
            *_header(judged, "profile", "optimizer"),
        ]
        for row in table.itertuples():
            lines.append(
                f"| {row.profile} | {row.optimizer} | {row.batch_size} | {row.converged}/{row.seeds} | "
                + _cells(row, judged)
                + f" | {row.in_the_matrix} |"
            )
        if (mine.profile == "float64").any():
            lines += _drift_section(runs, problem, seeds)
    excess = [m for m in bounded(PROBLEMS.default.table) if m.name == "excess_loss"]
    if (runs.profile == "seed").any() and excess:  # the finding is about reaching the excess bound
        finding = seed_finding(runs)
        holds = (finding.epoch1_loss_sgd < finding.epoch1_loss_adam) & (
            finding.epochs_to_converge_sgd < finding.epochs_to_converge_adam
        )
        lines += [
            "",
            "## The tutorial's finding (seed profile: lr 0.01, batch size 1, 20 epochs)",
            "",
            f"SGD falls faster than Adam on {int(holds.sum())} of {len(finding)} seeds. "
            f"Loss after epoch 1: SGD at most {finding.epoch1_loss_sgd.max():.3f}, "
            f"Adam at least {finding.epoch1_loss_adam.min():.3f}. "
            f"Epochs to get within {excess[0].bound:g} of the reference: "
            f"SGD {_span(finding.epochs_to_converge_sgd)}, Adam {_span(finding.epochs_to_converge_adam)}.",
        ]
    return "\n".join(lines) + "\n"


def _drift_section(runs: pd.DataFrame, problem: Problem, seeds: int) -> list[str]:
    changes = drift(runs, problem)
    metrics = gated(problem)
    lines = [
        "",
        f"### Run-to-run tolerances on {problem.name}",
        "",
        "The gate compares a candidate run with a baseline run of the same scenarios and seed. On one "
        "machine and torch version a CPU run repeats bit for bit, so any change is real; across "
        "versions and machines, kernels change the rounding. As a measure of what rounding alone "
        "can change, every combination that must converge ran again in float64 (same data, same "
        f"start, same steps) on seeds 0..{min(seeds, DRIFT_SEEDS) - 1}, against its float32 run:",
        "",
        "| metric | largest change | tolerance | tolerance / change |",
        "|---|---|---|---|",
    ]
    for metric in metrics:
        worst = changes[metric.name].max()
        ratio = metric.tolerance / worst if worst > 0 else math.inf  # type: ignore[operator]
        lines.append(f"| {metric.name} | {worst:.2e} | {metric.tolerance:g} | {ratio:.3g} |")
    names = [metric.name for metric in metrics]
    lines += ["", "The combinations that moved most (worst seed):", ""]
    lines += ["| optimizer | batch size | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for row in changes.sort_values(names[-1], ascending=False).head(5).itertuples():
        values = " | ".join(f"{getattr(row, name):.2e}" for name in names)
        lines.append(f"| {row.optimizer} | {row.batch_size} | {values} |")
    return lines


def _dtype_case(job: tuple[str, str, str, int, int]) -> dict[str, object]:
    dtype, problem_name, name, batch_size, seeds = job
    problem = PROBLEMS[problem_name]
    record = run(OPTIMIZERS[name].scenario(batch_size, seeds=seeds, dtype=dtype, problem=problem))
    converged = [state == "converged" for state in record["seed_status"]]
    row: dict[str, object] = {
        "dtype": dtype,
        "problem": problem.name,
        "optimizer": name,
        "batch_size": batch_size,
        "seeds": seeds,
        "converged": sum(converged),
        "runs": record["seed_runs"],
    }
    for metric_name, values in spread.seed_values(record, problem.table).items():
        row[f"worst_{metric_name}"] = max(values)
    return row


def measure_dtypes(
    problems: Sequence[Problem],
    names: Sequence[str],
    batch_sizes: Sequence[int] | None,
    dtypes: Sequence[str],
    seeds: int,
    workers: int,
) -> pd.DataFrame:
    """One row per (dtype, problem, optimizer, batch size): seeds converged, each bounded metric's worst."""
    jobs = [
        (dtype, problem.name, name, bs, seeds)
        for dtype in dtypes
        for problem in problems
        for name in names
        for bs in problem.batch_sizes_for(batch_sizes)
    ]
    if workers <= 1:
        _init_worker()
        rows = [_dtype_case(job) for job in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            rows = pool.map(_dtype_case, jobs, chunksize=1)
    return pd.DataFrame(rows)


def dtypes_markdown(table: pd.DataFrame, command: str) -> str:
    """The dtype calibration as committed in docs/calibration-dtypes.md; ``command`` made it."""
    seeds = int(table.seeds.max())
    lines = [
        "# Calibration of the convergence bounds per dtype",
        "",
        f"Generated by `{command}` (torch {torch.__version__}, CPU, one thread per case; seeds "
        f"0..{seeds - 1}, trained as one multi-seed scenario per case).",
        "",
        "Each worst value is over all seeds (inf: a seed diverged), with the margin left under the "
        "problem's bound (its metric table's, the same in every dtype).",
        "",
    ]
    for (dtype, problem_name), rows in table.groupby(["dtype", "problem"], sort=False):
        problem = PROBLEMS[str(problem_name)]
        judged = bounded(problem.table)
        must = rows[
            [
                OPTIMIZERS[n].expected_failure(int(b), problem=problem, dtype=str(dtype)) is None
                for n, b in zip(rows.optimizer, rows.batch_size, strict=True)
            ]
        ]
        worst = ", ".join(f"{must[f'worst_{m.name}'].max():.3f}" for m in judged)
        lines += [
            f"## {dtype}" + ("" if problem is PROBLEMS.default else f" on {problem.name}"),
            "",
            f"Bounds: {_bounds(problem)}. Over the cases that must converge, the worst values are {worst}.",
            "",
            *_header(judged, "optimizer"),
        ]
        for row in rows.itertuples():
            expected = _expectation(
                OPTIMIZERS[row.optimizer].expected_failure(row.batch_size, problem=problem, dtype=str(dtype))
            )
            lines.append(
                f"| {row.optimizer} | {row.batch_size} | {row.converged}/{row.seeds} | "
                + _cells(row, judged)
                + f" | {expected} |"
            )
        lines.append("")
    return "\n".join(lines)


SUITE_SEEDS = 128
"""Seeds per case in the suite's calibration (``--suite``): more than 100, and the matrix's 32 among them."""


def suite_problems() -> list[Problem]:
    """The suite: every registered problem but the default (the line, calibrated by hand)."""
    return [problem for problem in PROBLEMS.values() if problem is not PROBLEMS.default]


def suite_verdicts(table: pd.DataFrame) -> list[verdicts.Verdict]:
    """Each case's verdict from ``measure_dtypes``'s float32 rows: seeds trained and converged."""
    return [
        verdicts.Verdict(
            optimizer=str(row.optimizer),
            problem=str(row.problem),
            batch_size=int(row.batch_size),
            dtype="float32",
            seeds=int(row.seeds),
            converged=int(row.converged),
        )
        for row in table.itertuples()
    ]


def suite_markdown(table: pd.DataFrame, command: str) -> str:
    """The suite's calibration as committed in docs/calibration-suite.md; ``command`` made it.

    Per problem: its bounds, then each case's tuned lr, pass rate, worst value of each bounded
    metric with its margin, and what the matrix expects of it (from the new verdicts).
    """
    seeds = int(table.seeds.max())
    found = {verdict.key[:3]: verdict for verdict in suite_verdicts(table)}
    lines = [
        "# Calibration of the suite",
        "",
        f"Generated by `{command}` (torch {torch.__version__}, CPU, float32, one thread per case; "
        f"seeds 0..{seeds - 1}, trained as one multi-seed scenario per case at the optimizer's tuned "
        "lr from `optbench/optimizers/tuned.json`).",
        "",
        "A case that converged on every seed must converge in the matrix; one that converged on none "
        "is a strict expected failure; one in between a non-strict one. The verdicts are written to "
        "`optbench/optimizers/verdicts.json`, which the registry reads. Each worst value is over all "
        "seeds (inf: a seed diverged), with the margin left under the problem's bound.",
        "",
        "## Pass rates",
        "",
    ]
    cases = sorted(
        {(str(p), int(b)) for p, b in zip(table.problem, table.batch_size, strict=True)},
        key=lambda case: (list(PROBLEMS).index(case[0]), case[1]),
    )
    header = [f"{p} ({'full' if PROBLEMS[p].data is None else f'bs {b}'})" for p, b in cases]
    lines += ["| optimizer | " + " | ".join(header) + " |", "|---|" + "---|" * len(cases)]
    for name in sorted(set(table.optimizer)):
        cells = []
        for problem_name, batch_size in cases:
            verdict = found.get((name, problem_name, batch_size))
            cells.append("" if verdict is None else f"{verdict.converged / verdict.seeds:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for problem_name, rows in table.groupby("problem", sort=False):
        problem = PROBLEMS[str(problem_name)]
        judged = bounded(problem.table)
        lines += [
            "",
            f"## {problem.name}",
            "",
            f"Bounds: {_bounds(problem)}.",
            "",
            *_header(judged, "optimizer", "lr"),
        ]
        for row in rows.itertuples():
            verdict = found[(str(row.optimizer), problem.name, int(row.batch_size))]
            lr = OPTIMIZERS[row.optimizer].hyperparams(row.batch_size, problem=problem).get("lr")
            lr_text = f"{lr:g}" if isinstance(lr, (int, float)) else "torch's default"
            lines.append(
                f"| {row.optimizer} | {lr_text} | {row.batch_size} | {row.converged}/{row.seeds} | "
                + _cells(row, judged)
                + f" | {_expectation(verdict.expected_failure())} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m optbench.calibrate [--seeds N] [--out FILE]``.

    Returns 0 once the table is written, 2 on misuse (a bad ``--out`` is found before any run
    starts), 130 when interrupted (143 on SIGTERM): ``--out`` is then as it was.
    """
    with interrupts_raise():
        try:
            return _calibrate(argv)
        except KeyboardInterrupt as error:
            done = "the table was written" if written(error) else "nothing was written"
            print(f"{PROG}: interrupted; {done}", file=sys.stderr)
            return exit_status(error)


def _calibrate(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        epilog="With --dtypes, each given dtype's cases are calibrated (docs/calibration-dtypes.md) "
        "instead of the float32 bounds and tolerances (docs/calibration.md).",
    )
    add_matrix_options(parser.add_argument)
    parser.add_argument(
        "--seeds", type=int, help=f"seeds per combination (default 200; {SUITE_SEEDS} with --suite)"
    )
    parser.add_argument(
        "--suite",
        action="store_true",
        help="calibrate the suite (every problem but the line, or --problems) at the tuned settings, "
        "each case as one multi-seed scenario (docs/calibration-suite.md)",
    )
    parser.add_argument(
        "--verdicts",
        type=Path,
        help="with --suite: also write each case's seeds converged here (JSON; the registry reads "
        "optbench/optimizers/verdicts.json), whole, at the end (checked first)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all)")
    parser.add_argument("--no-seed-profile", action="store_true", help="skip the seed profile")
    parser.add_argument(
        "--out",
        type=Path,
        help="write the markdown here instead of standard output: all at once, at the end (its folder "
        "must exist; checked first)",
    )
    args = parser.parse_args(argv)
    fix = "pass --out a file in an existing, writable folder"
    if args.verdicts is not None and not args.suite:
        parser.error("--verdicts: only the suite's calibration (--suite) writes verdicts; add --suite")
    if args.suite and args.dtypes:
        parser.error("--suite calibrates float32 at the tuned settings; leave out --dtypes")
    try:
        for path in (args.out, args.verdicts):
            if path is not None:
                check_output_file(path, fix)
    except OutputError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    names = args.optimizers or tuple(OPTIMIZERS)
    try:
        check_names(names, OPTIMIZERS, "--optimizers", "optimizer")
        check_names(args.problems, PROBLEMS, "--problems", "problem")
    except ValueError as error:
        parser.error(str(error))
    problems = [PROBLEMS[name] for name in args.problems] if args.problems else None
    seeds = args.seeds if args.seeds is not None else SUITE_SEEDS if args.suite else 200
    if seeds < 1:
        parser.error(f"--seeds: expected a positive integer, got {seeds}")
    command = shlex.join([*PROG.split(), *(sys.argv[1:] if argv is None else argv)])
    found = None
    if args.suite:
        problems = problems or suite_problems()
        table = measure_dtypes(problems, names, args.batch_sizes, ["float32"], seeds, args.workers)
        text = suite_markdown(table, command)
        found = suite_verdicts(table)
    elif args.dtypes:
        problems = problems or [PROBLEMS.default]
        table = measure_dtypes(problems, names, args.batch_sizes, args.dtypes, seeds, args.workers)
        text = dtypes_markdown(table, command)
    else:
        problems = problems or [PROBLEMS.default]
        runs = measure(problems, names, args.batch_sizes, seeds, args.workers, not args.no_seed_profile)
        text = to_markdown(runs, problems, command)
    try:
        if found is not None and args.verdicts is not None:
            verdicts.write(args.verdicts, found, command, torch.__version__)
        if args.out is None:
            sys.stdout.write(text)
            return 0
        write_atomic(args.out, text, fix=fix)
    except OutputError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
