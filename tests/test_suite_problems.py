"""The diagnostic suite's problems: each reference checked by means other than its module's own solver."""

import hashlib
import json
import math
from importlib import resources

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parameters_to_vector

from optbench.problems import (
    ILL_CONDITIONED,
    LOGISTIC,
    NO_DATA,
    NOISY_QUADRATIC,
    PROBLEMS,
    ROSENBROCK,
    SINE,
    ill_conditioned,
    judged_against,
    noisy_quadratic,
    sine,
)

# ill_conditioned


@pytest.mark.parametrize("seed", [0, 3, 17])
def test_ill_conditioned_reference_is_numpys_least_squares(seed):
    x, y = ILL_CONDITIONED.data(seed)
    design = np.c_[x.double().numpy(), np.ones(len(x))]
    target = y.double().numpy().reshape(-1)
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    reference = ILL_CONDITIONED.reference(x, y)
    assert np.allclose(reference.params, solution, rtol=1e-8, atol=1e-10)
    mse = float(np.mean((design @ solution - target) ** 2))
    assert reference.loss == pytest.approx(mse, rel=1e-8)
    # The model's parameter order is the reference's: nn.Linear's weights, then its bias.
    assert len(reference.params) == sum(p.numel() for p in ILL_CONDITIONED.model(seed).parameters())


def test_ill_conditioned_gram_matrix_has_condition_number_at_least_1e6():
    conditions = {}
    for seed in range(32):  # the matrix's seeds
        x, _ = ILL_CONDITIONED.data(seed)
        features = x.double().numpy()
        centred = features - features.mean(axis=0)
        conditions[seed] = float(np.linalg.cond(centred.T @ centred))
    low = {seed: f"{value:.3g}" for seed, value in conditions.items() if value < 1e6}
    assert not low, f"cond(XᵀX) of the centred features is under 1e6 for seeds {low}"


def test_ill_conditioned_features_span_three_decades_of_scale():
    scales = np.array(ill_conditioned.SCALES)
    assert scales.max() / scales.min() >= 1e3 * (1 - 1e-12)
    for seed in (0, 1, 2):
        x, _ = ILL_CONDITIONED.data(seed)
        spread = x.double().numpy().std(axis=0)
        # Each column's spread is its scale (100 normal draws: within 30%).
        assert np.allclose(spread / scales, 1, atol=0.3)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ill_conditioned_reference_loss_is_about_the_noise_variance(seed):
    loss = ILL_CONDITIONED.reference(*ILL_CONDITIONED.data(seed)).loss
    assert pytest.approx(0.16) == ill_conditioned.NOISE**2
    assert 0.08 < loss < 0.25


# logistic


def _bce(x, y):
    design = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    target = y.double().reshape(-1)
    return lambda theta: F.binary_cross_entropy_with_logits(design @ theta, target)


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_logistic_reference_is_a_stationary_point_by_autograd(seed):
    x, y = LOGISTIC.data(seed)
    reference = LOGISTIC.reference(x, y)
    theta = torch.tensor(reference.params, dtype=torch.float64, requires_grad=True)
    loss = _bce(x, y)(theta)
    (gradient,) = torch.autograd.grad(loss, theta)
    assert float(gradient.norm()) < 1e-10
    assert reference.loss == pytest.approx(float(loss.detach()), rel=1e-12)
    # A convex loss with a stationary point at finite parameters: no plane separates the classes.
    assert all(math.isfinite(value) for value in reference.params)


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_logistic_reference_is_a_strict_minimum(seed):
    x, y = LOGISTIC.data(seed)
    bce = _bce(x, y)
    theta = torch.tensor(LOGISTIC.reference(x, y).params, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(bce, theta)
    assert torch.allclose(hessian, hessian.T, atol=1e-12)
    assert float(torch.linalg.eigvalsh(hessian).min()) > 1e-4
    at_minimum = float(bce(theta))
    directions = torch.randn(
        20, theta.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    for direction in directions / directions.norm(dim=1, keepdim=True):
        for size in (1e-3, 1e-1):
            assert float(bce(theta + size * direction)) > at_minimum


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_logistic_classes_overlap_and_the_fit_is_moderate(seed):
    x, y = LOGISTIC.data(seed)
    theta = torch.tensor(LOGISTIC.reference(x, y).params, dtype=torch.float64)
    logits = x.double() @ theta[:-1] + theta[-1]
    wrong = float(((logits > 0).double() != y.double().reshape(-1)).double().mean())
    # Means 1.5 standard deviations apart: the best plane errs on about Φ(-0.75) ≈ 23% of points.
    assert 0.1 < wrong < 0.4
    assert float(theta.norm()) < 5
    assert sorted(y.reshape(-1).tolist()) == [0.0] * 100 + [1.0] * 100


# rosenbrock


def _rosenbrock_at(point):
    model = ROSENBROCK.model(0)
    with torch.no_grad():
        model.point.copy_(torch.as_tensor(point))
    return model


@pytest.mark.parametrize("seed", [0, 1, 99])
def test_rosenbrock_starts_at_the_classic_point_for_every_seed(seed):
    model = ROSENBROCK.model(seed)
    assert model.point.tolist() == pytest.approx([-1.2, 1.0])
    x, y = ROSENBROCK.seed_data(seed)
    assert x.shape == NO_DATA[0].shape and y.shape == NO_DATA[1].shape
    with torch.no_grad():
        value = float(ROSENBROCK.loss(model(x), y))
    assert value == pytest.approx(24.2, rel=1e-6)  # (1 + 1.2)² + 100 (1 - 1.44)²


def test_rosenbrock_minimum_is_one_one_with_value_zero():
    x, y = NO_DATA
    model = _rosenbrock_at((1.0, 1.0))
    value = ROSENBROCK.loss(model(x), y)
    (gradient,) = torch.autograd.grad(value, model.point)
    assert float(value.detach()) == 0.0 and gradient.tolist() == [0.0, 0.0]

    def f(point):
        a, b = point[0], point[1]
        return (1 - a) ** 2 + 100 * (b - a**2) ** 2

    hessian = torch.autograd.functional.hessian(f, torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert hessian.tolist() == [[802.0, -400.0], [-400.0, 200.0]]
    assert float(torch.linalg.eigvalsh(hessian).min()) > 0
    # The model computes the same f: its value near (1, 1) matches the float64 formula.
    near = torch.tensor([0.9, 1.1])
    assert float(_rosenbrock_at(near)(x).mean().detach()) == pytest.approx(float(f(near.double())), rel=1e-5)
    reference = ROSENBROCK.reference(*ROSENBROCK.seed_data(0))
    assert reference.loss == 0.0 and reference.params == (1.0, 1.0)


# noisy_quadratic

CURVATURES = torch.tensor([1 / i for i in range(1, 101)], dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_quadratic_full_data_loss_is_the_true_quadratic(seed):
    x, y = NOISY_QUADRATIC.data(seed)
    assert torch.allclose(torch.tensor(noisy_quadratic.CURVATURES, dtype=torch.float64), CURVATURES)
    model = NOISY_QUADRATIC.model(seed)
    for theta in torch.randn(3, 100, generator=torch.Generator().manual_seed(100 + seed)):
        with torch.no_grad():
            model.theta.copy_(theta)
            loss = float(NOISY_QUADRATIC.loss(model(x), y))
        assert loss == pytest.approx(float((CURVATURES * theta.double().square()).sum() / 2), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_quadratic_reference_is_zero_at_zero(seed):
    reference = NOISY_QUADRATIC.reference(*NOISY_QUADRATIC.data(seed))
    assert abs(reference.loss) < 1e-5
    assert len(reference.params) == 100 and max(abs(value) for value in reference.params) < 1e-5


def _per_sample_gradients(seed):
    """Each sample's gradient at θ = 0, by autograd through the model (rows: samples)."""
    x, _ = NOISY_QUADRATIC.data(seed)
    model = NOISY_QUADRATIC.model(seed)
    with torch.no_grad():
        model.theta.zero_()
    jacobian = torch.autograd.functional.jacobian(
        lambda theta: torch.func.functional_call(model, {"theta": theta}, (x,)), model.theta.detach()
    )
    return jacobian.reshape(len(x), -1).double()


@pytest.mark.parametrize("seed", [0, 1])
def test_noisy_quadratic_gradient_noise_is_proportional_to_curvature(seed):
    gradients = _per_sample_gradients(seed)
    assert float(gradients.mean(dim=0).abs().max()) < 1e-6  # the full-data gradient at 0 is 0
    ratio = gradients.var(dim=0) / CURVATURES  # NOISE² in every dimension
    blocks = ratio.reshape(10, 10).mean(dim=1)
    assert float(blocks.max() / blocks.min()) < 1.3
    assert float(ratio.mean()) == pytest.approx(noisy_quadratic.NOISE**2, rel=0.1)
    # Not flat: the first ten dimensions' noise is their curvatures' times the last ten's (about 28).
    spread = gradients[:, :10].var(dim=0).mean() / gradients[:, -10:].var(dim=0).mean()
    assert float(spread / (CURVATURES[:10].mean() / CURVATURES[-10:].mean())) == pytest.approx(1, rel=0.2)


@pytest.mark.parametrize("batch", [5, 20])
def test_noisy_quadratic_a_batch_divides_the_gradient_noise_by_its_size(batch):
    gradients = _per_sample_gradients(0)
    samples = len(gradients)
    per_sample = gradients.square().mean(dim=0)  # the population variance: the mean gradient is 0
    generator = torch.Generator().manual_seed(batch)
    picks = torch.stack([torch.randperm(samples, generator=generator)[:batch] for _ in range(400)])
    batch_variance = gradients[picks].mean(dim=1).square().mean(dim=0)
    # Batches drawn without replacement: the finite population's factor (N - B) / (N - 1).
    expected = per_sample / batch * (samples - batch) / (samples - 1)
    assert float((batch_variance / expected).mean()) == pytest.approx(1, rel=0.1)


# sine


@pytest.fixture
def one_thread():
    """One thread for the L-BFGS runs, as ``python -m optbench.problems.sine`` solves: tiny matrices on
    two threads of a busy machine run ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sine_cache():
    return json.loads(resources.files("optbench.problems").joinpath(sine.REFERENCE_FILE).read_text())


def _sine_cached_loss(seed):
    _, y = sine.sine_data(seed)
    return _sine_cache()["losses"][hashlib.sha256(y.float().numpy().tobytes()).hexdigest()]


def test_sine_cache_covers_seeds_0_to_127_with_the_modules_settings():
    saved = _sine_cache()
    assert saved["starts"] == sine.STARTS and saved["iterations"] == sine.ITERATIONS
    assert sine.CACHED_SEEDS == 128 and len(saved["losses"]) == 128
    keys = {hashlib.sha256(sine.sine_data(seed)[1].numpy().tobytes()).hexdigest() for seed in range(128)}
    assert keys == set(saved["losses"])


def test_sine_cached_losses_are_below_the_noise():
    for seed in range(128):
        x, y = sine.sine_data(seed)
        loss = _sine_cached_loss(seed)
        # The network fits sin(x) itself closely, so its best fit beats the truth's MSE, the noise's.
        noise = float((y.double() - torch.sin(x.double())).square().mean())
        assert 0 < loss < noise < sine.NOISE**2 * 1.5, seed
        assert loss < sine.NOISE**2
        assert SINE.reference(x, y).loss == loss


def test_sine_cached_reference_is_what_lbfgs_finds(one_thread):
    x, y = sine.sine_data(0)
    cached = _sine_cached_loss(0)
    # Seed 0's best of the STARTS runs was its first start's: one run of ITERATIONS (~4 s) redoes it.
    # 3000 float64 iterations amplify rounding: under the suite's MKL_CBWR=COMPATIBLE the same run ends
    # 5.6% higher (0.005961) than the cache (0.005643, made without it), so only the cache being no worse
    # than the solver, and of the same quality, holds on every machine; not the value to 1e-3.
    recomputed = sine.best_loss(x, y, starts=1, iterations=sine.ITERATIONS)
    assert cached * (1 - 1e-3) <= recomputed <= cached * 1.25


@pytest.mark.parametrize("seed", [1, 127])
def test_sine_shorter_lbfgs_runs_do_not_beat_the_cache(seed, one_thread):
    # L-BFGS with a strong Wolfe search only descends: every start, stopped at a tenth of its run,
    # is still well above the best the full runs found (a cache too high would be beaten here).
    x, y = sine.sine_data(seed)
    assert sine.best_loss(x, y, iterations=sine.ITERATIONS // 10) > _sine_cached_loss(seed)


def test_sine_reference_has_no_params_so_its_distance_is_nan():
    x, y = sine.sine_data(0)
    reference = SINE.reference(x, y)
    assert reference.params == ()
    model = SINE.model(0)
    values = SINE.evaluate(model, reference, judged_against(SINE.truth, reference), reference.loss + 0.1)
    assert math.isnan(values["distance"])


# every problem


@pytest.mark.parametrize("problem", PROBLEMS.values(), ids=lambda problem: problem.name)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_reference_is_finite_and_a_lower_bound(problem, seed):
    x, y = problem.seed_data(seed)
    reference = problem.reference(x, y)
    assert math.isfinite(reference.loss) and all(math.isfinite(value) for value in reference.params)
    model = problem.model(seed)
    if problem is not SINE:
        assert len(reference.params) == parameters_to_vector(model.parameters()).numel()
    with torch.no_grad():
        loss = float(problem.loss(model(x), y))
    assert loss >= reference.loss - 1e-6
