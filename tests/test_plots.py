"""The report's figures: one look per optimizer, heatmap cells, performance profiles, and their drawing."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from optbench.optimizers.registry import OPTIMIZERS
from optbench.plots import data as plotdata
from optbench.plots import profiles, render, style

BUILT_IN = list(OPTIMIZERS)


def row(optimizer: str, problem: str = "line", batch_size: int = 10, **fields) -> dict:
    """One scenario's row, as ``optbench.results.load`` gives it, with what the figures read."""
    seconds = fields.pop("seconds", [0.5])
    steps = fields.pop("steps", [10] * len(seconds))
    statuses = fields.pop("seed_status", ["converged"] * len(seconds))
    curve = fields.pop("curve", [10.0, 1.0, 0.1])
    record = {
        "id": f"{optimizer}-bs{batch_size}-cpu-{problem}", "problem": problem, "optimizer": optimizer,
        "batch_size": batch_size, "device": "cpu", "dtype": "float32", "schedule": "constant",
        "seeds": len(seconds), "status": "converged", "expected_failure": "", "pass_rate": 1.0,
        "seed_status": statuses, "seed_target_seconds": seconds, "seed_target_step": steps,
        "reference_loss": 0.05, **{f"epoch_loss_q{q}": curve for q in (10, 50, 90)},
    }  # fmt: skip
    record.update(fields)
    return record


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


# One look per optimizer.


def test_every_built_in_optimizer_has_its_own_look_and_neighbours_differ_in_colour():
    looks = style.looks(BUILT_IN)
    assert list(looks) == BUILT_IN
    assert len(set(looks.values())) == len(BUILT_IN) == 14
    assert len({look.colour for look in looks.values()}) == 14  # adam and sgd, adam and adagrad, ...
    assert looks["adadelta"] == style.Look("#1f77b4", "-", "o")
    assert looks["sgd"] == style.Look("#000000", "-", "v")  # the reference in black
    assert style.look(14) == style.Look("#1f77b4", "--", "*")  # the 15th: the first colour again, dashed


def test_no_look_has_the_marks_of_a_failed_curve_or_a_diverged_sweep_point():
    assert {"X", "x"}.isdisjoint(style.MARKERS)


def test_a_name_keeps_its_look_whatever_else_a_report_draws():
    alone = style.looks(["adam"])
    assert alone["adam"] == style.looks([*BUILT_IN, "mine", "zeta"])["adam"] == style.looks(BUILT_IN)["adam"]
    added = style.looks(["sgd", "zeta", "mine", "sgd"])
    assert list(added) == ["sgd", "mine", "zeta"]  # built-ins first, then the rest sorted
    assert added["mine"] == style.look(14) and added["zeta"] == style.look(15)


def test_thirty_and_504_names_all_look_different():
    assert len(set(style.looks([f"opt{i:02d}" for i in range(30)]).values())) == 30
    looks = style.looks([f"opt{i:03d}" for i in range(504 - 14)] + BUILT_IN)
    assert len(set(looks.values())) == 504
    assert style.look(504) == style.look(0)  # where the triple comes round again


def test_a_figure_uses_the_looks_it_is_given_and_builds_its_own_only_for_a_name_they_lack():
    given = style.looks(["adam", "sgd"])
    assert style.looks_for(["adam"], given) is given
    built = style.looks_for(["adam", "mine"], given)
    assert set(built) == {"adam", "sgd", "mine"} and built["adam"] == given["adam"]


# Heatmap cells.


def test_pass_rates_have_a_cell_per_scenario_and_none_where_an_optimizer_did_not_run():
    rows = frame(
        row("sgd", pass_rate=0.5, status="not_converged", expected_failure="known"),
        row("adam"),
        row("adam", batch_size=100, pass_rate=0.25, status="not_converged"),
    )
    cells = plotdata.pass_rates(rows)
    assert list(cells.columns) == [*plotdata.CELLS, "pass_rate"]
    assert list(zip(cells.optimizer, cells.column, cells.pass_rate, strict=True)) == [
        ("adam", "line bs10", 1.0),
        ("sgd", "line bs10", 0.5),
        ("adam", "line bs100", 0.25),
    ]  # no sgd at batch size 100: its cell is missing
    assert cells.xfail.tolist() == [False, True, False]
    assert cells.outcome.tolist() == ["passed", "expected failure", "failed"]


def test_columns_name_the_device_dtype_and_schedule_only_where_they_vary():
    rows = frame(row("sgd"), row("sgd", dtype="float64", id="x"))
    assert plotdata.case_columns(rows).tolist() == ["line bs10 float32", "line bs10 float64"]
    assert plotdata.case_columns(frame(row("sgd"))).tolist() == ["line bs10"]


def test_time_to_target_is_the_median_seed_counting_a_seed_that_did_not_converge_as_never():
    rows = frame(
        # Nearest-rank median of 4: the 2nd smallest. The diverged seed's 0.1 does not count.
        row("a", seconds=[0.4, 0.1, 0.3, 0.2], steps=[40, 10, 30, 20],
            seed_status=["converged", "diverged", "converged", "converged"]),
        # Half converged: the median is the 2nd smallest, the slower of the two.
        row("b", seconds=[0.2, None, 0.6, None], steps=[2, None, 6, None],
            seed_status=["converged", "not_converged", "converged", "not_converged"]),
        # Fewer than half: never reached.
        row("c", seconds=[0.2, 0.3, 0.4], seed_status=["converged", "stalled", "diverged"]),
        row("d", seconds=[], steps=[]),  # saved before time to target
        row("e", seconds=[0.0]),  # within the bound before training
    )  # fmt: skip
    times = plotdata.times_to_target(rows).set_index("optimizer")
    expected = {"a": 0.3, "b": 0.6, "c": math.nan, "d": math.nan, "e": 0.0}
    assert times.seconds.to_dict() == pytest.approx(expected, nan_ok=True)
    assert times.steps["a"] == 30 and times.steps["b"] == 6 and math.isnan(times.steps["c"])


# Performance profiles.


def times(table: dict[str, tuple[float, ...]], cases: tuple[str, ...] = ("A", "B")) -> pd.DataFrame:
    """``data.times_to_target``-shaped rows: an optimizer's seconds (and steps, the same) per case."""
    rows = [
        {"optimizer": name, "problem": case, "batch_size": 10, "device": "cpu", "dtype": "float32",
         "schedule": "constant", "seconds": value, "steps": value}
        for name, values in table.items()
        for case, value in zip(cases, values, strict=True)
        if value is not None
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_a_profile_computed_by_hand():
    # On A the fastest takes 1 s, on B 1 s: a is 1x and 4x, b 2x and 1x, c unsolved and 40x.
    table = times({"a": (1.0, 4.0), "b": (2.0, 1.0), "c": (math.nan, 40.0)})
    curves = profiles.performance_profiles(table, ["seconds"])
    assert list(curves.columns) == profiles.PROFILE
    steps = {name: list(zip(p.tau, p.share, strict=True)) for name, p in curves.groupby("optimizer")}
    assert steps == {
        "a": [(1.0, 0.5), (4.0, 1.0), (10.0, 1.0)],
        "b": [(1.0, 0.5), (2.0, 1.0), (10.0, 1.0)],
        "c": [(1.0, 0.0), (10.0, 0.0)],  # 40x is past TAU_MAX: unsolved at every tau drawn
    }
    scores = profiles.profile_scores(curves)
    assert scores.optimizer.tolist() == ["b", "a", "c"]  # highest first
    # The mean over cases of 1 - log10(ratio): a (1 + 1 - log10 4) / 2, b (1 + 1 - log10 2) / 2.
    expected = [(2 - math.log10(2)) / 2, (2 - math.log10(4)) / 2, 0.0]
    assert scores.score.tolist() == pytest.approx(expected)


def test_an_optimizer_that_did_not_run_a_case_lacks_it_and_ties_share_the_fastest():
    table = times({"a": (2.0, 3.0), "b": (2.0, None), "c": (4.0, 6.0)})
    curves = profiles.performance_profiles(table, ["seconds"]).set_index(["optimizer", "tau"]).share
    assert curves["a"].to_dict() == {1.0: 1.0, 10.0: 1.0}
    assert curves["b"].to_dict() == {1.0: 0.5, 10.0: 0.5}  # fastest on A (a tie), never ran B
    assert curves["c"].to_dict() == {1.0: 0.0, 2.0: 1.0, 10.0: 1.0}
    scores = profiles.profile_scores(profiles.performance_profiles(table, ["seconds"]))
    expected = {"a": 1.0, "b": 0.5, "c": 1 - math.log10(2)}
    assert scores.set_index("optimizer").score.to_dict() == pytest.approx(expected)


def test_a_case_the_fastest_solved_at_once_counts_only_for_those_as_fast():
    ratios = profiles.ratios(times({"a": (0.0, 1.0), "b": (0.0, 2.0), "c": (0.5, 1.0)}))
    assert ratios.ratio.tolist() == [1.0, 1.0, 1.0, 2.0, math.inf, 1.0]


def test_cases_on_several_devices_pool_each_against_its_own_fastest():
    one = times({"a": (1.0,), "b": (2.0,)}, ("A",))
    table = pd.concat([one.assign(device=device) for device in ("cpu", "cuda")], ignore_index=True)
    table.loc[(table.device == "cuda") & (table.optimizer == "a"), "seconds"] = 8.0  # b is 4x faster there
    curves = profiles.performance_profiles(table, ["seconds"]).set_index(["optimizer", "tau"]).share
    assert curves["a"].to_dict() == {1.0: 0.5, 4.0: 1.0, 10.0: 1.0}
    assert curves["b"].to_dict() == {1.0: 0.5, 2.0: 1.0, 10.0: 1.0}


def test_both_measures_by_default_and_an_unknown_one_is_refused():
    table = times({"a": (1.0, 4.0), "b": (2.0, 1.0)})
    assert list(dict.fromkeys(profiles.performance_profiles(table).measure)) == ["seconds", "steps"]
    with pytest.raises(ValueError, match="measure 'wall': choose from seconds, steps"):
        profiles.performance_profiles(table, ["wall"])
    assert len(profiles.performance_profiles(table.iloc[:0])) == 0


# Drawing.


def curves_frame() -> pd.DataFrame:
    return frame(
        row("adam", curve=[10.0, 1.0, 0.1]),
        row("sgd", curve=[10.0, 5.0, 4.0, 3.0], status="not_converged"),
        row("adagrad", curve=[10.0, 1e6, math.nan], status="diverged", expected_failure="known"),
        row("adam", "sine", batch_size=1, curve=[1.0, 0.5]),
        row("adam", "line", batch_size=100, curve=[10.0, 0.1]),
    )


def test_loss_curves_put_a_problems_batch_sizes_in_a_row_and_mark_failures():
    rows = curves_frame()
    curves = plotdata.loss_curves(rows)
    assert set(curves.columns) >= {"outcome"}
    panels = plotdata.panels(rows)
    assert render.panel_grid(panels) == {("line", 10, "cpu"): (0, 0), ("line", 100, "cpu"): (0, 1),
                                         ("sine", 1, "cpu"): (0, 2)}  # fmt: skip
    looks = style.looks(["adam", "sgd", "adagrad", "mine"])
    figure = render.loss_curves_figure(curves, plotdata.floors(rows), panels, looks)
    first = figure.axes[0]
    assert len(figure.axes) == 3 and first.get_title() == "line, batch size 10"
    assert first.get_xscale() == "symlog" and first.get_yscale() == "log"
    assert first.get_xlabel() == "epoch (log scale past 1)"
    drawn = [
        (to_hex(line.get_color()), line.get_linestyle(), line.get_marker()) for line in first.get_lines()
    ]
    assert drawn[:3] == [(looks[name].colour, looks[name].linestyle, looks[name].marker)
                         for name in ("adagrad", "adam", "sgd")]  # fmt: skip
    assert drawn[3] == ("#000000", ":", "None")  # the reference loss
    failed, expected = first.collections  # one collection per kind of mark
    assert failed.get_offsets().tolist() == [[3.0, 3.0]]  # sgd's last point
    top = first.get_ylim()[1]
    assert expected.get_offsets().tolist() == [[1.0, top]]  # adagrad blew up: its ring on the top edge
    assert top == pytest.approx(10 * 10**render.TOP_DECADES)
    (legend,) = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    marks = ["failed: not converged, no expected failure", "not converged, as its expected failure allows"]
    assert labels == ["adagrad", "adam", "sgd", "reference loss", *marks]
    assert all(axis.get_legend() is None for axis in figure.axes)
    assert render.png(figure)[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_baseline_is_drawn_faint_under_the_candidate_and_named_in_the_legend():
    rows = frame(row("adam"))
    curves = pd.concat([plotdata.loss_curves(rows, "baseline"), plotdata.loss_curves(rows, "candidate")])
    figure = render.loss_curves_figure(curves, plotdata.floors(rows), plotdata.panels(rows))
    baseline, candidate = figure.axes[0].get_lines()[:2]
    assert baseline.get_alpha() == 0.45 and candidate.get_alpha() == 1.0
    colour = style.looks(["adam"])["adam"].colour
    assert to_hex(baseline.get_color()) == to_hex(candidate.get_color()) == colour
    assert "baseline (faint, thin)" in [text.get_text() for text in figure.legends[0].get_texts()]


def test_past_max_legend_optimizers_the_legend_names_the_marks_alone():
    rows = frame(*(row(f"opt{index:02d}") for index in range(render.MAX_LEGEND + 1)))
    curves, floors = plotdata.loss_curves(rows), plotdata.floors(rows)
    (legend,) = render.loss_curves_figure(curves, floors, plotdata.panels(rows)).legends
    assert legend.get_title().get_text().startswith(f"{render.MAX_LEGEND + 1} optimizers")
    assert legend.get_texts()[0].get_text() == "reference loss"


def heatmap_rows() -> pd.DataFrame:
    return frame(
        row("sgd", seconds=[0.25], pass_rate=1.0),
        row("adam", seconds=[0.5], pass_rate=0.5, expected_failure="known", status="not_converged",
            seed_status=["not_converged"]),
        row("adam", "sine", seconds=[0.125]),
    )  # fmt: skip


def title(figure) -> str:
    """The figure's title, its lines (wrapped to the figure's width) joined by spaces."""
    return " ".join(figure.get_suptitle().split())


def texts(axis) -> dict[tuple[str, str], str]:
    """The numbers written in a heatmap's cells, by (optimizer, column)."""
    rows = [label.get_text() for label in axis.get_yticklabels()]
    columns = [label.get_text() for label in axis.get_xticklabels()]
    return {(rows[y], columns[x]): text.get_text() for text in axis.texts for x, y in [text.get_position()]}


def test_the_pass_rate_heatmap_writes_each_cell_and_leaves_a_case_not_run_grey():
    figure = render.heatmap_figure(plotdata.pass_rates(heatmap_rows()), "pass_rate")
    axis = figure.axes[0]
    assert len(figure.axes) == 2  # the heatmap and its colour bar
    assert [label.get_text() for label in axis.get_yticklabels()] == ["adam", "sgd"]  # registry order
    assert [label.get_text() for label in axis.get_xticklabels()] == ["line bs10", "sine bs10"]
    assert texts(axis) == {
        ("adam", "line bs10"): "0.50",
        ("sgd", "line bs10"): "1.00",
        ("adam", "sine bs10"): "1.00",
    }
    image = axis.get_images()[0].get_array()
    assert tuple(image[1, 1]) == pytest.approx((0.85, 0.85, 0.85, 1.0))  # sgd did not run the sine
    (hatched,) = axis.collections
    assert hatched.get_hatch() == "///" and len(hatched.get_paths()) == 1  # adam's expected failure
    assert "hatched: an expected failure (xfail mark); grey: not run." in title(figure)


def test_the_time_heatmap_dashes_a_case_never_reached_and_says_what_that_means():
    figure = render.heatmap_figure(plotdata.times_to_target(heatmap_rows()), "seconds")
    axis = figure.axes[0]
    assert texts(axis) == {
        ("adam", "line bs10"): "\u2014",
        ("sgd", "line bs10"): "0.25",
        ("adam", "sine bs10"): "0.12",
    }
    image = axis.get_images()[0].get_array()
    assert tuple(image[0, 0]) == (1.0, 1.0, 1.0, 1.0)  # ran, never reached: white
    assert render.NEVER in title(figure)


def test_a_heatmap_of_many_optimizers_shows_the_first_and_says_so():
    rows = frame(*(row(f"opt{index:03d}") for index in range(render.MAX_ROWS + 5)))
    figure = render.heatmap_figure(plotdata.pass_rates(rows))
    axis = figure.axes[0]
    assert len(axis.get_yticklabels()) == render.MAX_ROWS and len(axis.texts) == render.MAX_ROWS
    assert f"(the first {render.MAX_ROWS} of {render.MAX_ROWS + 5} optimizers)" in title(figure)


def test_the_profiles_figure_has_a_panel_per_measure_and_the_scores_in_its_legend():
    table = times({"adam": (1.0, 4.0), "sgd": (2.0, 1.0), "mine": (math.nan, 40.0)})
    curves = profiles.performance_profiles(table)
    scores = profiles.profile_scores(curves)
    looks = style.looks(["adam", "sgd", "mine"])
    figure = render.profiles_figure(curves, scores, looks, cases=2)
    assert [axis.get_title() for axis in figure.axes] == list(profiles.MEASURES.values())
    first = figure.axes[0]
    assert first.get_xscale() == "log" and first.get_xlim() == (1.0, 10.0)
    assert first.get_ylabel() == "share of the 2 cases solved within \u03c4"
    sgd, adam, mine = first.get_lines()  # best score first
    assert to_hex(sgd.get_color()) == looks["sgd"].colour and sgd.get_linestyle() == looks["sgd"].linestyle
    nudges = [line.get_ydata()[0] - share for line, share in ((sgd, 0.5), (adam, 0.5), (mine, 0.0))]
    assert np.diff(nudges) == pytest.approx([render.PROFILE_NUDGE / 2] * 2)  # equal profiles drawn apart
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ["sgd  0.85 / 0.85", "adam  0.70 / 0.70", "mine  0.00 / 0.00"]
    assert figure.legends[0].get_title().get_text() == "score: seconds / steps"
    assert render.png(figure)[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_optimizer_looks_the_same_in_every_figure():
    looks = style.looks(["adam", "sgd", "mine"])
    rows = curves_frame()
    curve_figure = render.loss_curves_figure(plotdata.loss_curves(rows), plotdata.floors(rows),
                                             plotdata.panels(rows), looks)  # fmt: skip
    table = times({"adam": (1.0, 4.0), "sgd": (2.0, 1.0)})
    curves = profiles.performance_profiles(table)
    profile_figure = render.profiles_figure(curves, profiles.profile_scores(curves), looks)

    def legend_looks(figure) -> dict[str, style.Look]:
        handles = figure.legends[0].legend_handles
        return {
            handle.get_label().split()[0]: style.Look(
                to_hex(handle.get_color()), handle.get_linestyle(), handle.get_marker()
            )
            for handle in handles
        }

    drawn = legend_looks(curve_figure), legend_looks(profile_figure)
    for name in ("adam", "sgd"):
        assert drawn[0][name] == drawn[1][name] == looks[name]


def test_a_problem_without_data_is_labelled_full_batch_not_batch_size_1():
    frame = pd.DataFrame(
        {
            "id": ["adam-full-cpu-rosenbrock", "adam-bs1-cpu", "my.opt-full-cuda1-quiet-float64"],
            "problem": ["rosenbrock", "line", "quiet"],
            "batch_size": [1, 1, 1],
            "device": ["cpu"] * 3,
            "dtype": ["float32"] * 3,
            "schedule": ["constant"] * 3,
        }
    )
    assert plotdata.full_batch(frame.id).tolist() == [True, False, True]
    assert plotdata.case_columns(frame).tolist() == ["rosenbrock full", "line bs1", "quiet full"]


def test_a_sensitivity_panel_of_a_problem_without_data_says_full_batch():
    assert plotdata.sensitivity_panel("rosenbrock", 1, "float32") == "rosenbrock, full batch"
    assert plotdata.sensitivity_panel("line", 1, "float64") == "line, batch size 1, float64"


def test_the_seed_figure_draws_sgd_and_adam_in_their_looks_and_the_floor_apart():
    from matplotlib.colors import to_hex

    curves = pd.DataFrame(
        {
            "optimizer": ["seed.adam", "seed.adam", "seed.sgd", "seed.sgd"],
            "step": [1, 2, 1, 2],
            "loss": [3, 2, 3, 1],
        }
    )
    figure = render.seed_figure(curves, 0.5)
    lines = figure.axes[0].get_lines()
    looks = style.looks(["adam", "sgd"])
    assert [to_hex(line.get_color()) for line in lines[:2]] == [looks["sgd"].colour, looks["adam"].colour]
    assert to_hex(lines[2].get_color()) not in {look.colour for look in looks.values()}
