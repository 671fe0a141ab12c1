"""The default matrix: every registered optimizer x batch size x device, timed and checked.

Each round trains a fresh model with a fresh optimizer built from that model's
parameters (the ``benchmark_training`` fixture); the record is saved with the
timings, then the run must have converged.
"""

from optbench import Scenario, assert_converged


def test_converges(benchmark_training, scenario: Scenario) -> None:
    assert_converged(benchmark_training(scenario))
