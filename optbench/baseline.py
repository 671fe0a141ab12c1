"""``python -m optbench.baseline``: a saved run's final metrics as a small baseline file.

The file (no timings, no curves) is what ``optbench --optbench-baseline FILE``
and ``python -m optbench.gate --baseline FILE`` compare a new run against.
It is written all or nothing (a temporary file renamed over ``--out``), never over
the run it is made from. Exit status: 0 written, 2 the run is unusable or ``--out``
cannot be written (nothing was written), 130 (143 on SIGTERM) interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from optbench.files import (
    OutputError,
    check_apart,
    check_output_file,
    exit_status,
    interrupts_raise,
    write_atomic,
    written,
)
from optbench.options import add_storage_option
from optbench.results import ResultsError, baseline_document, find_run, load, newest_run

PROG = "python -m optbench.baseline"
FIX = "pass --out a file in an existing, writable folder"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; 0 on success, 2 when the run is unusable or the file cannot be written.

    Interrupted, it exits 130 (143 on SIGTERM) and ``--out`` is as it was, or complete.
    """
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument(
        "run", nargs="?", help="a results file or save number (default: the newest saved run)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the baseline file to write (its folder must exist)"
    )
    add_storage_option(parser.add_argument)
    parser.add_argument(
        "--allow-failed", action="store_true", help="write it even though some scenarios failed"
    )
    args = parser.parse_args(argv)
    with interrupts_raise():
        try:
            return _write(args)
        except KeyboardInterrupt as error:
            done = f"{args.out} holds the new baseline" if written(error) else "nothing was written"
            print(f"{PROG}: interrupted; {done}", file=sys.stderr)
            return exit_status(error)


def _write(args: argparse.Namespace) -> int:
    try:
        check_output_file(args.out, FIX)
        path = find_run(args.run, args.benchmarks_dir) if args.run else newest_run(args.benchmarks_dir)
        check_apart(args.out, [path], "pass --out another file than the run it is made from")
        frame = load([path]).frame
        failed = frame[(frame.status != "converged") & (frame.expected_failure == "")]
        if len(failed) and not args.allow_failed:
            raise ResultsError(
                f"{path}: failed scenarios ({', '.join(sorted(failed.id))}) make it no baseline; "
                "save a passing run, or pass --allow-failed"
            )
        machine_info = json.loads(path.read_text(encoding="utf-8")).get("machine_info") or {}
        keep = ("node", "machine", "python_version", "torch_version", "torch_cuda", "cuda_device")
        keep += ("torch_threads", "default_dtype", "cpu_brand", "mkl_cbwr", "optbench_version")
        document = baseline_document(frame, {key: machine_info[key] for key in keep if key in machine_info})
        write_atomic(args.out, json.dumps(document, indent=1) + "\n", fix=FIX)
    except (ResultsError, OutputError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(f"{PROG}: wrote {args.out} ({len(frame)} scenarios from {path})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
