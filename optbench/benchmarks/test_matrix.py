"""The default matrix: every registered optimizer x batch size x device, timed and checked.

Each round trains a fresh model with a fresh optimizer built from that model's
parameters (the ``benchmark_training`` fixture); the record is saved with the
timings, then the run must have converged and, with ``--optbench-baseline``,
must not have ended worse than in the baseline.
"""

from optbench import Scenario, assert_converged, assert_not_regressed


def test_converges(benchmark_training, scenario: Scenario, optbench_baseline) -> None:
    record = benchmark_training(scenario)
    assert_converged(record)
    assert_not_regressed(record, optbench_baseline)
