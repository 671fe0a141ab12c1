"""The seed profile: the tutorial's SGD against Adam (lr 0.01, batch size 1, 20 epochs), done right.

The tutorial's listing trained its second model with the first model's optimizer;
here each scenario builds its own optimizer from its own model, and the engine
refuses any other pairing.
"""

import pytest

from optbench import SEED_PROFILE, assert_converged, assert_falls_faster, assert_not_regressed, run


@pytest.mark.parametrize("name", list(SEED_PROFILE))
def test_seed_profile(benchmark_training, name: str, optbench_seed: int, optbench_baseline) -> None:
    record = benchmark_training(SEED_PROFILE[name].scenario(1, seed=optbench_seed))
    assert_converged(record)
    assert_not_regressed(record, optbench_baseline)


def test_sgd_falls_faster_than_adam(optbench_seed: int) -> None:
    """The tutorial's finding, on the per-epoch full-data MSE of both runs."""
    sgd, adam = (
        run(SEED_PROFILE[name].scenario(1, seed=optbench_seed)) for name in ("seed.sgd", "seed.adam")
    )
    assert_falls_faster(sgd, adam)
