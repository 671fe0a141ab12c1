"""The report's tables: timing columns that say which run they are of, in the summary and the comparison."""

import math
from pathlib import Path

import pandas as pd
import pytest

from optbench.results import load
from optbench.results.tables import TIME_COLUMNS, compare, is_number, markdown, summary, text, texts, timings

RUN = Path(__file__).resolve().parent / "data" / "runs" / "schema4.json"


def cases(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_a_step_is_one_runs_and_a_seed_is_its_share_of_the_round():
    frame = cases(
        seed_runs=["one", "sequential", "vectorised", "vectorised"],
        seeds=[1, 4, 4, 32],
        steps=[250, 250, 250, 250],
        median=[0.5, 0.5, 0.5, 0.5],
    )
    table = timings(frame)
    assert list(table.columns) == list(TIME_COLUMNS)
    assert table.seed_runs.tolist() == frame.seed_runs.tolist()
    # One seed: 250 steps; four in turn: 1,000 steps of one run; four or 32 together: 250 steps of one run.
    assert table.ms_per_step.tolist() == [2.0, 0.5, 2.0, 2.0]
    assert table.s_all_seeds.tolist() == [0.5, 0.5, 0.5, 0.5]
    assert table.s_per_seed.tolist() == [0.5, 0.125, 0.125, 0.015625]


def test_a_one_seed_case_no_longer_reads_as_fast_as_32_seeds_together():
    # The numbers: 0.26 s for one Adafactor seed, 0.26 s for 32 Adam seeds, 100 steps each.
    table = timings(
        cases(seed_runs=["one", "vectorised"], seeds=[1, 32], steps=[100, 100], median=[0.26, 0.26])
    )
    adafactor, adam = table.to_dict("records")
    assert adafactor["s_all_seeds"] == adam["s_all_seeds"]
    assert adafactor["s_per_seed"] == pytest.approx(32 * adam["s_per_seed"])
    assert adafactor["ms_per_step"] == pytest.approx(adam["ms_per_step"]) == pytest.approx(2.6)


def test_no_steps_or_no_timing_is_no_number():
    table = timings(
        cases(
            seed_runs=["one", "sequential", "vectorised"],
            seeds=[1, 2, 3],
            steps=[0, 10, 10],
            median=[0.1, math.nan, math.nan],
        )
    )
    assert math.isnan(table.ms_per_step[0]) and table.s_all_seeds[0] == 0.1 and table.s_per_seed[0] == 0.1
    assert table[["ms_per_step", "s_all_seeds", "s_per_seed"]].iloc[1:].isna().all().all()


def test_the_summary_shows_seeds_then_how_they_ran_then_the_times():
    frame = load([RUN]).frame
    table = summary(frame).set_index("id")
    columns = list(table.columns)
    start = columns.index("seeds")
    assert columns[start : start + 1 + len(TIME_COLUMNS)] == ["seeds", *TIME_COLUMNS]
    assert not {"median_s", "us_per_step", "median"} & set(columns)
    assert columns[-3:] == ["status", "passed", "expected_failure"]
    saved = frame.set_index("id")
    for scenario, row in table.iterrows():
        median, steps, seeds = saved.loc[scenario, ["median", "steps", "seeds"]]
        assert row.s_all_seeds == median and row.s_per_seed == pytest.approx(median / seeds)
        assert row.ms_per_step == pytest.approx(median / steps * 1e3)  # vectorised, or one seed
    assert table.loc["adam-bs10-cpu", ["seeds", "seed_runs"]].tolist() == [32, "vectorised"]
    assert table.loc["seed.adam-bs1-cpu", ["seeds", "seed_runs"]].tolist() == [1, "one"]


def test_the_comparison_has_each_runs_times_and_the_ratio_of_their_rounds():
    baseline = load([RUN]).frame
    candidate = baseline.copy()
    # The same 32 seeds run one after another: 32 times the round, the same time per step.
    slower = candidate.id == "sgd-bs10-cpu"
    candidate.loc[slower, "seed_runs"] = "sequential"
    candidate.loc[slower, "median"] *= 32
    table = compare(baseline, candidate).set_index("id")
    for name in TIME_COLUMNS:
        assert {f"{name}_baseline", f"{name}_candidate"} <= set(table.columns), name
    assert not [column for column in table.columns if column.startswith("median")]
    columns = ["id", *table.columns]  # id is the index here
    changes = ["regression", "status_change", "time_ratio", "excess_loss_change"]
    assert columns[: 7 + len(changes)] == [
        "id",
        "problem",
        "optimizer",
        "batch_size",
        "device",
        "dtype",
        "schedule",
        *changes,
    ]
    for side in ("baseline", "candidate"):
        start = columns.index(f"status_{side}")
        shown = ["status", "passed", "seeds", *TIME_COLUMNS, "pass_rate"]
        assert columns[start : start + len(shown)] == [f"{name}_{side}" for name in shown]
    row = table.loc["sgd-bs10-cpu"]
    assert (row.seed_runs_baseline, row.seed_runs_candidate) == ("vectorised", "sequential")
    assert row.time_ratio == pytest.approx(32) == row.s_all_seeds_candidate / row.s_all_seeds_baseline
    assert row.ms_per_step_candidate == pytest.approx(row.ms_per_step_baseline)
    assert row.s_per_seed_candidate == pytest.approx(32 * row.s_per_seed_baseline)
    assert row.regression == "median time x32 (tolerance x1.25)"
    assert table.drop(index="sgd-bs10-cpu").time_ratio.tolist() == [1.0] * 5


def test_a_column_is_written_as_each_of_its_cells_would_be():
    table = pd.DataFrame(
        {
            "float": [0.123456, math.nan, 1e-7, math.inf],
            "int": [1, 20, 300, 4000],
            "bool": [True, False, True, False],
            "mixed": ["<a|b>", math.nan, 2.5, None],
        }
    )
    for name in table:
        assert texts(table[name]) == [text(value) for value in table[name].tolist()], name
    assert texts(table["float"]) == ["0.1235", "", "1e-07", "inf"]
    assert [is_number(table[name]) for name in table] == [True, True, False, False]
    assert markdown(table).splitlines()[2:4] == [
        "| 0.1235 | 1 | True | &lt;a\\|b&gt; |",
        "|  | 20 | False |  |",
    ]
