"""Sweeps the learning rate of every selected optimizer x problem x batch size (x dtype) over seeds.

``python -m optbench.tune --tune-seeds auto --out optbench/optimizers/tuned.json`` regenerates
the committed tuned settings of the default registry on every problem at its own batch sizes (13
learning rates, over the seeds the default matrix trains: 32 for an elementwise optimizer, else 1).
Each case prints its chosen lr, its passing window and its tunability as it finishes.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from optbench.devices import unavailable_reason
from optbench.files import OutputError, check_output_file, exit_status, interrupts_raise, written
from optbench.optimizers import proof, specs
from optbench.optimizers.registry import OPTIMIZERS, Registry
from optbench.options import (
    add_matrix_options,
    add_schedule_option,
    add_tune_options,
    check_names,
    parse_devices,
)
from optbench.problems import PROBLEMS
from optbench.schedules import CONSTANT
from optbench.tune import settings
from optbench.tune.settings import CaseRow, describe
from optbench.tune.sweep import (
    Job,
    MissingExtraError,
    NoLearningRateError,
    SchedulerError,
    check_takes_lr,
    sweep,
)

PROG = "python -m optbench.tune"


def _say(row: CaseRow) -> None:
    """Prints a finished case's line above the progress bar (``tqdm.write``)."""
    from tqdm import tqdm  # the sweep has checked it is installed

    tqdm.write(describe(row), file=sys.stdout)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    add_matrix_options(parser.add_argument)
    add_schedule_option(parser.add_argument)
    add_tune_options(parser.add_argument)
    parser.add_argument(
        "--optimizer",
        action="append",
        default=[],
        metavar="SPEC",
        help="add an optimizer to sweep: NAME=module:Class with optional JSON keyword arguments "
        "(repeatable), as pytest's --optbench-optimizer",
    )
    parser.add_argument(
        "--device", type=parse_devices, default=("cpu",), metavar="DEVICE", help="default cpu"
    )
    parser.add_argument(
        "--jobs", type=int, default=-1, metavar="N", help="processes, joblib's n_jobs (default -1: all cores)"
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the cases on the dask.distributed scheduler at ADDRESS (tcp://host:8786) instead",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write the tuned settings here (JSON), whole, at the end; its folder must exist (checked first)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 0 once done, 2 on misuse (before any sweep starts), 130/143 when stopped."""
    with interrupts_raise():
        try:
            return _tune(argv)
        except KeyboardInterrupt as error:
            done = "the tuned settings were written" if written(error) else "nothing was written"
            print(f"{PROG}: interrupted; {done}", file=sys.stderr)
            return exit_status(error)


def _registry(parser: argparse.ArgumentParser, added: Sequence[str]) -> Registry:
    try:
        entries = [*specs.from_entry_points(), *specs.from_pyproject(Path("pyproject.toml"))]
        entries += [specs.parse_option(spec) for spec in added]
        registry = OPTIMIZERS.with_entries(entries, replace=True)
        # Each added optimizer's elementwise claim is proven, and one that passes is swept stacked.
        return proof.prove_added(registry, [entry.name for entry in entries])[0]
    except ValueError as error:  # SpecError (ClaimError too), or a name given twice
        parser.error(specs.one_line(str(error)))


def _jobs(args: argparse.Namespace, registry: Registry) -> list[Job]:
    names = args.optimizers or tuple(registry)
    problems = [PROBLEMS[name] for name in args.problems or PROBLEMS]
    jobs = []
    for problem, name, dtype, schedule, device in itertools.product(
        problems, names, args.dtypes or ("float32",), args.schedules or (CONSTANT,), args.device
    ):
        for batch_size in problem.batch_sizes_for(args.batch_sizes):
            jobs.append(
                Job(
                    registry[name],
                    problem,
                    batch_size,
                    dtype,
                    device,
                    args.lr_grid,
                    args.tune_seeds,
                    schedule=schedule,
                )
            )
    return jobs


def _tune(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.jobs == 0 or args.jobs < -1:
        parser.error(f"--jobs: expected a positive number of processes or -1 for all cores, got {args.jobs}")
    if len(args.device) != 1:
        parser.error("--device: give one device")
    reason = unavailable_reason(args.device[0])
    if reason is not None and args.dask is None:  # a cluster's workers may have what this machine lacks
        parser.error(f"--device {reason}; sweep on cpu, or on a --dask cluster whose workers have it")
    fix = "pass --out a file in an existing, writable folder"
    if args.out is not None:
        try:
            check_output_file(args.out, fix)
        except OutputError as error:
            parser.exit(2, f"{PROG}: error: {error}\n")
    registry = _registry(parser, args.optimizer)
    try:
        check_names(args.optimizers, registry, "--optimizers", "optimizer")
        check_names(args.problems, PROBLEMS, "--problems", "problem")
        jobs = _jobs(args, registry)
        for info in {job.info.name: job.info for job in jobs}.values():
            check_takes_lr(info)
    except (ValueError, NoLearningRateError) as error:
        parser.error(specs.one_line(str(error)))
    except specs.USER_ERRORS as error:  # an added optimizer's constructor failed, built with an lr
        parser.error(specs.one_line(f"building an optimizer with an lr raised {specs.raised(error)}"))
    command = shlex.join([*PROG.split(), *(sys.argv[1:] if argv is None else argv)])
    try:
        rows = sweep(jobs, n_jobs=args.jobs, dask=args.dask, done=_say)
    except MissingExtraError as error:
        parser.exit(2, f"{PROG}: error: {error}\n")
    except SchedulerError as error:
        parser.exit(2, f"{PROG}: error: {error}\n")
    except specs.USER_ERRORS as error:  # an optimizer's own code failed mid-sweep, here or in a worker
        parser.exit(1, specs.one_line(f"{PROG}: error: a sweep failed: {specs.raised(error)}") + "\n")
    if args.out is not None:
        try:
            settings.write(args.out, rows, command)
        except OutputError as error:
            parser.exit(2, f"{PROG}: error: {error}\n")
        print(f"wrote {len(rows)} case(s) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
