"""``python -m optbench.baseline``: a saved run's final metrics as a small baseline file.

The file (no timings, no curves) is what ``pytest benchmarks --optbench-baseline
FILE`` and ``python -m optbench.gate --baseline FILE`` compare a new run against.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from optbench.files import OutputError, write_atomic
from optbench.options import add_storage_option
from optbench.results import ResultsError, baseline_document, find_run, load, newest_run

PROG = "python -m optbench.baseline"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; 0 on success, 2 when the run is unusable or the file cannot be written."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument(
        "run", nargs="?", help="a results file or save number (default: the newest saved run)"
    )
    parser.add_argument("--out", type=Path, required=True, help="the baseline file to write")
    add_storage_option(parser.add_argument)
    parser.add_argument(
        "--allow-failed", action="store_true", help="write it even though some scenarios failed"
    )
    args = parser.parse_args(argv)
    try:
        path = find_run(args.run, args.benchmarks_dir) if args.run else newest_run(args.benchmarks_dir)
        frame = load([path]).frame
        failed = frame[(frame.status != "converged") & (frame.expected_failure == "")]
        if len(failed) and not args.allow_failed:
            raise ResultsError(
                f"{path}: failed scenarios ({', '.join(sorted(failed.id))}) make it no baseline; "
                "save a passing run, or pass --allow-failed"
            )
        machine_info = json.loads(path.read_text(encoding="utf-8")).get("machine_info") or {}
        keep = ("node", "machine", "python_version", "torch_version", "torch_cuda", "cuda_device")
        keep += ("torch_threads", "default_dtype", "optbench_version")
        document = baseline_document(frame, {key: machine_info[key] for key in keep if key in machine_info})
        write_atomic(args.out, json.dumps(document, indent=1) + "\n", fix="pass --out a writable path")
    except (ResultsError, OutputError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(f"{PROG}: wrote {args.out} ({len(frame)} scenarios from {path})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
