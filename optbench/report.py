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
from optbench.plots import profiles as plotprofiles
from optbench.plots import render, style
from optbench.record.checks import STATUS_MEANINGS
from optbench.results import Loaded, ResultsError, expand, find_run, load, newest_run
from optbench.results.tables import (
    OPTIMIZER_COLUMNS,
    REPORT_TOLERANCES,
    TIME_COLUMNS,
    compare,
    is_number,
    markdown,
    optimizers,
    summary,
    texts,
)
from optbench.tune import settings
from optbench.tune.settings import TunedError, TunedFile

PROG = "python -m optbench.report"
FIX = "pass --out a writable folder (only its last part is created)"


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _figures(frame: pd.DataFrame, baseline: pd.DataFrame | None, tuned: TunedFile | None) -> dict[str, bytes]:
    matrix, seed = plotdata.split_seed_profile(plotdata.newest(frame))
    old_matrix = matrix.iloc[:0]
    if baseline is not None:
        old_matrix, _ = plotdata.split_seed_profile(plotdata.newest(baseline))
    sweeps = None
    if tuned is not None:
        pairs = plotdata.run_cases(frame) | (plotdata.run_cases(baseline) if baseline is not None else set())
        sweeps = plotdata.sensitivity_curves(tuned, pairs)
    # One look per optimizer for every figure: built from every name any of them draws.
    swept = [] if sweeps is None else list(sweeps.optimizer)
    looks = style.looks([*matrix.optimizer, *old_matrix.optimizer, *swept])
    figures: dict[str, bytes] = {}
    if len(matrix):
        curves = plotdata.loss_curves(matrix, "candidate" if baseline is not None else "")
        if baseline is not None:
            curves = pd.concat([plotdata.loss_curves(old_matrix, "baseline"), curves])
        figure = render.loss_curves_figure(curves, plotdata.floors(matrix), plotdata.panels(matrix), looks)
        figures["loss_curves.png"] = render.png(figure)
        figures["pass_rate.png"] = render.png(render.heatmap_figure(plotdata.pass_rates(matrix), "pass_rate"))
        times = plotdata.times_to_target(matrix)
        if times.seconds.notna().any():  # records saved before time to target have none
            figures["time_to_target.png"] = render.png(render.heatmap_figure(times, "seconds"))
            profiles = plotprofiles.performance_profiles(times)
            scores = plotprofiles.profile_scores(profiles)
            cases = len(times[plotdata.CASE].drop_duplicates())
            figures["profiles.png"] = render.png(render.profiles_figure(profiles, scores, looks, cases))
    seed_points = plotdata.seed_curves(seed)
    if len(seed_points):
        figures["seed.png"] = render.png(render.seed_figure(seed_points, float(seed.reference_loss.min())))
    if sweeps is not None and len(sweeps):
        figures["sensitivity.png"] = render.png(render.sensitivity_figure(sweeps, looks=looks))
    return figures


def _marks(table: pd.DataFrame) -> pd.Series:
    """Each row's mark: ``bad``, ``expected`` or ``""``.

    ``bad`` is a scenario that failed its bounds unexpectedly, or regressed or went missing since the
    baseline; ``expected`` one that failed where its ``expected_failure`` says it may.
    """
    none = pd.Series(False, index=table.index)
    failed = table["passed"].eq(False) if "passed" in table else none
    expected = failed & table["expected_failure"].fillna("").ne("") if "expected_failure" in table else none
    bad = failed & ~expected
    if "regression" in table:
        bad |= ~table["regression"].fillna("").isin(["", "added"])
    return pd.Series("", index=table.index).mask(expected, "expected").mask(bad, "bad")


def _html_table(table: pd.DataFrame, name: str) -> str:
    """A table with a header that stays in view, numbers right-aligned and marked rows (``_marks``).

    Built column by column (``tables.texts``): a report of 20,000 rows has half a million cells.
    """
    numbers = [is_number(table[column]) for column in table.columns]
    right = ",".join(f"#{name} td:nth-child({index})" for index, yes in enumerate(numbers, start=1) if yes)
    align = f"<style>{right}{{text-align:right}}</style>" if right else ""
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in table.columns)
    cells = [
        texts(table[column]) if number else [html.escape(cell) for cell in texts(table[column])]
        for column, number in zip(table.columns, numbers, strict=True)
    ]
    opens = [f'<tr class="{mark}">' if mark else "<tr>" for mark in _marks(table).tolist()]
    rows = "".join(
        f"{tr}<td>{'</td><td>'.join(row)}</td></tr>" for tr, *row in zip(opens, *cells, strict=True)
    )
    return (
        f'{align}<div class="scroll"><table id="{name}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _provenance(frame: pd.DataFrame) -> pd.DataFrame:
    runs = frame.drop_duplicates("run")[["run", "save", "machine", "torch", "commit", "date"]]
    return runs.assign(date=runs.date.astype(str)).reset_index(drop=True)


LEGEND = "What each status means"
"""The heading of the statuses' legend, under the scenarios' table (``STATUS_MEANINGS``)."""

TIME_LEGEND = "What the time columns mean"
"""The heading of the timing columns' legend, under the scenarios' table (``TIME_COLUMNS``)."""

FIGURES = {
    "loss_curves.png": "The full-data loss (log scale) as training goes on: a panel per problem and batch "
    "size, a line per optimizer, each optimizer in the same colour and line style in every figure. A case "
    "of several seeds is drawn as its median over seeds with the 10-90% band shaded, and the reference "
    "solution's loss is the dotted floor. Failed cases and expected failures are marked. Lower, and "
    "sooner, is better.",
    "pass_rate.png": "The pass rate: the share of a case's seeds that met every bound, for each optimizer "
    "(a row) and problem and batch size (a column), written in its cell; 1 is every seed. A hatched cell is "
    "an expected failure (its xfail mark), a grey one a case the optimizer did not run.",
    "time_to_target.png": "The time to target: the median seed's seconds until its loss came within the "
    "problem's excess-loss bound, for each optimizer and case, on a log colour scale; a dash is a case whose "
    "median seed never got there (a seed that did not converge never does), hatched and grey cells as in "
    "the pass rate. Seeds run as replicas share their run's seconds, all seeds' together. Lower is better; "
    "times compare on one machine only.",
    "profiles.png": "Performance profiles (Dolan and Moré): for each optimizer, the share of the cases "
    "(problem and batch size) it reached the target in within tau times the fastest optimizer's time on "
    "that case, for tau from 1 to 10 on a log axis, in seconds and in optimizer steps. Higher and further "
    "left is better; each optimizer's score in the legend is the area under its profile, 1 for the fastest "
    "on every case.",
    "sensitivity.png": "How the tuning sweep's outcome depends on the learning rate (log scale): each "
    "optimizer's pass rate over seeds (top row, 0.95 dashed) and the 0.95 quantile of its excess loss "
    "(bottom row), a column per problem and batch size; a ringed dot marks the chosen learning rate. A wide "
    "plateau at a pass rate of 1 means the choice is not fragile.",
    "seed.png": "The tutorial's own comparison done right: SGD against Adam on the line at batch size 1, "
    "each with its own fresh model and optimizer: one seed's training loss against the step, averaged over "
    "windows of steps.",
}
"""Each figure the report may draw and what it shows, in the page's order; one not drawn is left out."""


def _legend_markdown() -> str:
    return f"## {LEGEND}\n\n" + "".join(f"- `{name}`: {text}\n" for name, text in STATUS_MEANINGS.items())


def _legend_html() -> str:
    items = "".join(
        f"<dt><code>{html.escape(name)}</code></dt><dd>{html.escape(text)}</dd>"
        for name, text in STATUS_MEANINGS.items()
    )
    return f"<h2>{html.escape(LEGEND)}</h2><dl>{items}</dl>"


def _time_meanings(compared: bool) -> dict[str, str]:
    if not compared:
        return TIME_COLUMNS
    ratio = (
        "s_all_seeds_candidate / s_all_seeds_baseline; above "
        f"{REPORT_TOLERANCES.time_ratio:g} it is a regression (timings compare on one machine only)"
    )
    sides = {f"{name}_baseline, _candidate": text for name, text in TIME_COLUMNS.items()}
    return {**sides, "time_ratio": ratio}


def _time_legend_markdown(compared: bool) -> str:
    meanings = _time_meanings(compared)
    return f"## {TIME_LEGEND}\n\n" + "".join(f"- `{name}`: {text}\n" for name, text in meanings.items())


def _time_legend_html(compared: bool) -> str:
    items = "".join(
        f"<dt><code>{html.escape(name)}</code></dt><dd>{html.escape(text)}</dd>"
        for name, text in _time_meanings(compared).items()
    )
    return f"<h2>{html.escape(TIME_LEGEND)}</h2><dl>{items}</dl>"


def _figure_html(name: str, data: bytes) -> str:
    anchor = html.escape(name.removesuffix(".png"))
    explanation = FIGURES.get(name, "")
    source = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (
        f'<figure id="{anchor}"><h3>{html.escape(name)}</h3>'
        + (f"<p>{html.escape(explanation)}</p>" if explanation else "")
        + f'<img alt="{html.escape(name)}" src="{source}"></figure>'
    )


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1500px;padding:1em 2em;color:#222;"
    "line-height:1.45}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.8em}"
    "nav a{margin-right:1.2em}.lede{color:#444}figure{margin:1.2em 0 2em}figure h3{margin:.2em 0}"
    "figure p{max-width:70em;margin:.2em 0 .6em}img{max-width:100%;height:auto;border:1px solid #eee}"
    ".scroll{max-height:75vh;overflow:auto;border:1px solid #ccc;margin:.5em 0}"
    "table{border-collapse:separate;border-spacing:0;font-size:13px;font-variant-numeric:tabular-nums}"
    "td,th{border-bottom:1px solid #e6e6e6;border-right:1px solid #eee;padding:3px 7px;text-align:left;"
    "white-space:nowrap}th{position:sticky;top:0;z-index:1;background:#eef0f3;border-bottom:2px solid #aab}"
    "td{background:#fff}tbody tr:nth-child(even) td{background:#f8f8f8}"
    "th:first-child,td:first-child{position:sticky;left:0}th:first-child{z-index:2}"
    "tbody tr.bad td{background:#fde2e1}tr.bad td:first-child{box-shadow:inset 4px 0 #c62828}"
    "tbody tr.expected td{background:#fff3d6}tr.expected td:first-child{box-shadow:inset 4px 0 #e0a100}"
    "dt{font-weight:bold;margin-top:.4em}dd{margin-left:1.5em}"
)
"""The page's style: a header and first column that stay in view over a table's own scroll box, numbers
right-aligned (per table, by column), rows failed unexpectedly in red and as expected in amber."""


def _definitions_html(meanings: dict[str, str]) -> str:
    """A definition list: each name in code, then what it means."""
    items = "".join(
        f"<dt><code>{html.escape(name)}</code></dt><dd>{html.escape(text)}</dd>"
        for name, text in meanings.items()
    )
    return f"<dl>{items}</dl>"


def _index(
    title: str,
    intro: str,
    figures: dict[str, bytes],
    table: pd.DataFrame,
    provenance: pd.DataFrame,
    ranked: pd.DataFrame | None = None,
) -> str:
    """The self-contained page: the figures, the optimizers' scores, the scenarios, legends and runs.

    Each figure comes with its explanation (``FIGURES``), each table's columns with theirs.
    """
    compared = "time_ratio" in table
    order = {name: index for index, name in enumerate(FIGURES)}
    ordered = sorted(figures, key=lambda name: order.get(name, len(order)))  # stable: others as drawn
    sections = [("figures", "Figures", "".join(_figure_html(name, figures[name]) for name in ordered))]
    if ranked is not None and len(ranked):
        sections.append(
            (
                "optimizers",
                "Optimizers",
                "<p>One row per optimizer, the best performance-profile score in seconds first.</p>"
                + _html_table(ranked, "optimizers-table")
                + _definitions_html(OPTIMIZER_COLUMNS),
            )
        )
    marking = (
        "Rows in red regressed against the baseline or are missing from the candidate."
        if compared
        else "Rows in red did not pass their bounds; rows in amber did not either, as expected_failure says "
        "they may."
    )
    sections.append(
        (
            "scenarios",
            "Scenarios",
            f"<p>{marking} The header stays in view as the table scrolls.</p>"
            + _html_table(table, "scenarios-table")
            + _time_legend_html(compared)
            + _legend_html(),
        )
    )
    sections.append(("runs", "Runs", _html_table(provenance, "runs-table")))
    shown = [(anchor, heading, body) for anchor, heading, body in sections if body]
    nav = "".join(f'<a href="#{anchor}">{html.escape(heading)}</a>' for anchor, heading, _ in shown)
    body = "".join(
        f'<section id="{anchor}"><h2>{html.escape(heading)}</h2>{content}</section>'
        for anchor, heading, content in shown
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<p class="lede">{html.escape(intro)}</p><nav>{nav}</nav>{body}</body></html>\n'
    )


def _intro(frame: pd.DataFrame, table: pd.DataFrame, baseline: Loaded | None) -> str:
    marks = _marks(table).value_counts()
    bad, expected = int(marks.get("bad", 0)), int(marks.get("expected", 0))
    if baseline is not None:
        return (
            f"{len(table)} scenario(s), baseline run {baseline.frame.run.iloc[0]} against candidate run "
            f"{frame.run.iloc[0]}: {bad} regressed or missing (in red)."
        )
    return (
        f"{frame.id.nunique()} scenario(s) of {frame.problem.nunique()} problem(s) and "
        f"{frame.optimizer.nunique()} optimizer setup(s), from {frame.run.nunique()} run(s): "
        f"{len(table) - bad - expected} of {len(table)} row(s) passed their bounds, {expected} failed as "
        f"expected (in amber) and {bad} failed unexpectedly (in red)."
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
    ranked = None
    matrix, _ = plotdata.split_seed_profile(plotdata.newest(frame))
    if baseline is None and len(matrix):
        ranked = optimizers(matrix, plotdata.times_to_target(matrix))
        files["optimizers.csv"] = ranked.to_csv(index=False)
    files["summary.csv"] = table.to_csv(index=False)
    legend = _time_legend_markdown(baseline is not None) + "\n" + _legend_markdown()
    scores = ""
    if ranked is not None:
        meanings = "".join(f"- `{name}`: {text}\n" for name, text in OPTIMIZER_COLUMNS.items())
        scores = f"## Optimizers\n\n{markdown(ranked)}\n{meanings}\n"
    runs = f"## Runs\n\n{markdown(provenance)}"
    files["summary.md"] = f"# {title}\n\n{scores}## Scenarios\n\n{markdown(table)}\n{legend}\n{runs}"
    figures = {name: data for name, data in files.items() if isinstance(data, bytes)}  # the PNGs
    files["index.html"] = _index(title, _intro(frame, table, baseline), figures, table, provenance, ranked)
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
