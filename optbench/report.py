"""``python -m optbench.report``: saved runs in, a loss-curve report out.

Reads the newest autosaved run under ``.benchmarks/`` (or the files and folders
given), and writes ``loss_curves.png``, ``seed.png``, ``summary.csv``,
``summary.md`` and a self-contained ``index.html`` into ``--out``, and
``sensitivity.png`` where the tuned settings (``--tuned``) hold a sweep of the
runs' optimizers. With ``--baseline RUN --candidate RUN`` it overlays the two
runs and adds delta columns, marking regressions. ``summary.md`` and ``index.html`` explain the
statuses under the table (``optbench.record.checks.STATUS_MEANINGS``).

The report is written all or nothing: into a temporary folder beside ``--out``,
then swapped in, so that whatever stops it (Ctrl-C, SIGTERM, an error) ``--out``
holds the complete old report or the complete new one. A folder that holds files
the report did not write is refused unless ``--force``, which writes the report's
files beside them. Exit status: 0 written, 2 nothing usable to report or nowhere
to write it, or a ``--tuned`` file that cannot be used (nothing was written),
130 (143 on SIGTERM) interrupted.
"""

from __future__ import annotations

import argparse
import base64
import html
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from optbench.files import (
    OutputError,
    check_apart,
    check_output_folder,
    exit_status,
    interrupts_raise,
    is_owned,
    write_folder,
    written,
)
from optbench.options import add_storage_option
from optbench.plots import data as plotdata
from optbench.plots import render
from optbench.record.checks import STATUS_MEANINGS
from optbench.results import Loaded, ResultsError, expand, find_run, load, newest_run
from optbench.results.tables import compare, markdown, summary, text
from optbench.tune import settings
from optbench.tune.settings import TunedError, TunedFile

PROG = "python -m optbench.report"
FIX = "pass --out a writable folder (only its last part is created)"


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _figures(frame: pd.DataFrame, baseline: pd.DataFrame | None, tuned: TunedFile | None) -> dict[str, bytes]:
    matrix, seed = plotdata.split_seed_profile(plotdata.newest(frame))
    figures: dict[str, bytes] = {}
    if len(matrix):
        curves = plotdata.loss_curves(matrix, "candidate" if baseline is not None else "")
        if baseline is not None:
            old_matrix, _ = plotdata.split_seed_profile(plotdata.newest(baseline))
            curves = pd.concat([plotdata.loss_curves(old_matrix, "baseline"), curves])
        figure = render.loss_curves_figure(curves, plotdata.floors(matrix), plotdata.panels(matrix))
        figures["loss_curves.png"] = render.png(figure)
    seed_points = plotdata.seed_curves(seed)
    if len(seed_points):
        figures["seed.png"] = render.png(render.seed_figure(seed_points, float(seed.reference_loss.min())))
    if tuned is not None:
        pairs = plotdata.run_cases(frame) | (plotdata.run_cases(baseline) if baseline is not None else set())
        sweeps = plotdata.sensitivity_curves(tuned, pairs)
        if len(sweeps):
            figures["sensitivity.png"] = render.png(render.sensitivity_figure(sweeps))
    return figures


def _html_table(table: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        return html.escape(text(value))

    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in table.columns)
    rows = []
    for record in table.to_dict("records"):
        marked = record.get("regression") not in (None, "", "added") or record.get("passed") is False
        cls = ' class="bad"' if marked else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{cell(v)}</td>" for v in record.values()) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _provenance(frame: pd.DataFrame) -> pd.DataFrame:
    runs = frame.drop_duplicates("run")[["run", "save", "machine", "torch", "commit", "date"]]
    return runs.assign(date=runs.date.astype(str)).reset_index(drop=True)


LEGEND = "What each status means"
"""The heading of the statuses' legend, under the scenarios' table (``STATUS_MEANINGS``)."""


def _legend_markdown() -> str:
    return f"## {LEGEND}\n\n" + "".join(f"- `{name}`: {text}\n" for name, text in STATUS_MEANINGS.items())


def _legend_html() -> str:
    items = "".join(
        f"<dt><code>{html.escape(name)}</code></dt><dd>{html.escape(text)}</dd>"
        for name, text in STATUS_MEANINGS.items()
    )
    return f"<h2>{html.escape(LEGEND)}</h2><dl>{items}</dl>"


def _index(title: str, figures: dict[str, bytes], tables: dict[str, pd.DataFrame]) -> str:
    images = "".join(
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode("ascii")}"><figcaption>{html.escape(name)}</figcaption></figure>'
        for name, data in figures.items()
    )
    sections = "".join(
        f"<h2>{html.escape(name)}</h2>{_html_table(table)}" + (_legend_html() if index == 0 else "")
        for index, (name, table) in enumerate(tables.items())
    )
    style = (
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}"
        "tr.bad td{background:#fde2e1}img{max-width:100%}figure{margin:1em 0}dt{font-weight:bold}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{images}{sections}</body></html>\n"
    )


def build(
    loaded: Loaded, baseline: Loaded | None = None, tuned: TunedFile | None = None
) -> dict[str, bytes | str]:
    """Every output file's name and content, computed before anything is written.

    ``tuned`` adds ``sensitivity.png`` where it holds a sweep of an optimizer on a problem that the runs hold.
    """
    frame = loaded.frame
    _say("plotting")
    old = baseline.frame if baseline is not None else None
    files: dict[str, bytes | str] = dict(_figures(frame, old, tuned))
    _say("tabulating")
    if baseline is not None:
        table = compare(plotdata.newest(baseline.frame), plotdata.newest(frame))
        title = "optbench comparison"
        provenance = pd.concat([_provenance(baseline.frame), _provenance(frame)], ignore_index=True)
    else:
        table = summary(frame)
        title = "optbench report"
        provenance = _provenance(frame)
    files["summary.csv"] = table.to_csv(index=False)
    legend = _legend_markdown()
    files["summary.md"] = f"# {title}\n\n{markdown(table)}\n{legend}\n## Runs\n\n{markdown(provenance)}"
    figures = {name: data for name, data in files.items() if name.endswith(".png")}
    files["index.html"] = _index(title, figures, {"Scenarios": table, "Runs": provenance})  # type: ignore[arg-type]
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; 0 on success, 2 when nothing usable can be reported or written, 130 when interrupted.

    Interrupted by SIGTERM, it exits 143; either way ``--out`` is left as it was, or complete.
    """
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument(
        "paths", nargs="*", type=Path, help="result files or folders (default: the newest saved run)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("optbench-report"),
        help="output folder (default optbench-report): created, or replaced whole where a report was "
        "written before; its parent folder must exist",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into an --out folder that holds other files too: the report's files are replaced, "
        "the rest left as they are",
    )
    parser.add_argument("--baseline", metavar="RUN", help="a results file or a save number such as 0003")
    parser.add_argument("--candidate", metavar="RUN", help="a results file or a save number such as 0004")
    parser.add_argument(
        "--tuned",
        type=Path,
        metavar="FILE",
        help="tuned settings (python -m optbench.tune --out) to draw sensitivity.png from: each of the runs' "
        "optimizers' pass rate and excess loss against the learning rate (default: the packaged "
        "optbench/optimizers/tuned.json, where it exists)",
    )
    add_storage_option(parser.add_argument)
    args = parser.parse_args(argv)
    if (args.baseline is None) != (args.candidate is None):
        parser.error("--baseline and --candidate go together; give both, or neither")
    if args.baseline is not None and args.paths:
        parser.error("give either result paths or --baseline/--candidate, not both")
    had_report = is_owned(args.out)
    with interrupts_raise():
        try:
            return _report(args)
        except KeyboardInterrupt as error:
            if written(error):
                _say(f"interrupted; {args.out}/ holds the new report")
            elif had_report:
                _say(f"interrupted; {args.out} still holds the old report")
            else:
                _say("interrupted; nothing was written")
            return exit_status(error)


def _report(args: argparse.Namespace) -> int:
    try:
        check_output_folder(args.out, FIX, args.force)
        if args.baseline is not None:
            base_path = find_run(args.baseline, args.benchmarks_dir)
            cand_path = find_run(args.candidate, args.benchmarks_dir)
            inputs = [base_path, cand_path]
        else:
            inputs = expand(args.paths) if args.paths else [newest_run(args.benchmarks_dir)]
        tuned_path = [] if args.tuned is None else [args.tuned]
        check_apart(
            args.out, [*args.paths, *inputs, *tuned_path], "pass --out a folder apart from the inputs"
        )
        tuned = _tuned(args.tuned)
        if args.baseline is not None:
            _say(f"loading baseline {base_path} and candidate {cand_path}")
            baseline, loaded = load([base_path]), load([cand_path])
            warnings = baseline.warnings + loaded.warnings
        else:
            _say(f"loading {len(inputs)} file(s)" if args.paths else f"loading {inputs[0]}")
            baseline, loaded = None, load(inputs)
            warnings = loaded.warnings
        for warning in warnings:
            _say(f"warning: {warning}")
        frame = loaded.frame
        _say(f"{frame.id.nunique()} scenario(s) from {frame.run.nunique()} run(s)")
        files_out = build(loaded, baseline, tuned)
        _say(f"writing {', '.join(files_out)}")
        write_folder(args.out, files_out, PROG, force=args.force, fix=FIX)
    except (ResultsError, OutputError, TunedError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    _say(f"wrote {args.out}/")
    return 0


def _tuned(path: Path | None) -> TunedFile | None:
    """The ``--tuned`` file, read once; without ``--tuned``, the packaged file where it exists, else ``None``.

    Raises:
        TunedError: the file given is missing or unusable (the packaged one, unusable, is a warning instead).
    """
    if path is not None:
        return settings.read(path)
    if not settings.TUNED_FILE.exists():
        return None
    try:
        return settings.read(settings.TUNED_FILE)
    except TunedError as error:
        _say(f"warning: {error}; no sensitivity.png")
        return None


if __name__ == "__main__":
    raise SystemExit(main())
