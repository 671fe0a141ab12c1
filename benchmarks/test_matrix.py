"""The default matrix: every registered optimizer x batch size x device, timed and checked.

Each round trains a fresh model with a fresh optimizer built from that model's
parameters; building them is pytest-benchmark's untimed ``setup``.
"""

from optbench import Scenario, assert_converged, prepare, train


def test_converges(benchmark, scenario: Scenario, optbench_rounds: int) -> None:
    record = benchmark.pedantic(
        train, setup=lambda: ((prepare(scenario),), {}), rounds=optbench_rounds, warmup_rounds=1
    )
    benchmark.extra_info.update(record)
    assert_converged(record)
