import pytest
import torch
from torch.utils.data import Dataset

from optbench import LineDataset, least_squares
from optbench.engine.dataset import as_tensors


def test_default_is_the_tutorials_line():
    data = LineDataset(seed=3)
    expected_x = torch.arange(-5, 5, 0.1).view(-1, 1)
    noise = 0.4 * torch.randn(expected_x.shape, generator=torch.Generator().manual_seed(3))
    assert len(data) == 100
    assert torch.equal(data.x, expected_x)
    assert torch.equal(data.func, -5 * expected_x + 1)
    assert torch.equal(data.y, -5 * expected_x + 1 + noise)
    assert data.truth == (-5.0, 1.0)
    x, _y = data[7]
    assert x.shape == (1,) and float(x) == pytest.approx(-4.3)


def test_seed_decides_the_noise_and_nothing_else():
    a, b, c = LineDataset(seed=1), LineDataset(seed=1), LineDataset(seed=2)
    assert torch.equal(a.y, b.y)
    assert not torch.equal(a.y, c.y)
    assert torch.equal(a.x, c.x)


def test_does_not_touch_the_global_random_state():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    LineDataset(seed=5)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("size", [1, 7, 100, 1000])
def test_size_is_exact(size):
    data = LineDataset(size=size, start=-1.0, step=0.01)
    assert len(data) == size
    assert data.x[0, 0] == pytest.approx(-1.0)
    assert data.x[-1, 0] == pytest.approx(-1.0 + 0.01 * (size - 1), abs=1e-5)


def test_line_parameters_without_noise_are_recovered_exactly():
    data = LineDataset(slope=2.5, intercept=-3.0, noise=0.0)
    assert data.truth == (2.5, -3.0)
    assert torch.equal(data.y, data.func)
    fit = least_squares(data.x, data.y)
    assert fit.slope == pytest.approx(2.5, abs=1e-6)
    assert fit.intercept == pytest.approx(-3.0, abs=1e-6)
    assert fit.mse == pytest.approx(0.0, abs=1e-10)


def test_least_squares_matches_the_normal_equations():
    data = LineDataset(seed=11)
    x, y = data.x.double().view(-1), data.y.double().view(-1)
    slope = ((x - x.mean()) * (y - y.mean())).sum() / (x - x.mean()).square().sum()
    intercept = y.mean() - slope * x.mean()
    fit = least_squares(data.x, data.y)
    assert fit.slope == pytest.approx(float(slope), rel=1e-9)
    assert fit.intercept == pytest.approx(float(intercept), rel=1e-9)
    assert fit.mse == pytest.approx(float((slope * x + intercept - y).square().mean()), rel=1e-9)
    # The noise variance is 0.16; the fitted line can only beat it slightly.
    assert 0.1 < fit.mse < 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"size": 0}, "size must be at least 1"), ({"noise": -1.0}, "noise must be")]
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LineDataset(**kwargs)


class Pairs(Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_any_dataset_of_pairs_becomes_column_tensors():
    line = LineDataset(seed=4)
    x, y = as_tensors(Pairs([(float(a), b) for a, b in zip(line.x.view(-1), line.y, strict=True)]))
    assert x.shape == y.shape == (100, 1)
    assert torch.equal(x, line.x) and torch.equal(y, line.y)


def test_pairs_of_any_size_become_rows():
    plane = [(torch.tensor([float(i), 2.0 * i]), torch.tensor([3.0 * i])) for i in range(5)]
    x, y = as_tensors(Pairs(plane))
    assert x.shape == (5, 2) and y.shape == (5, 1)
    assert torch.equal(x[3], torch.tensor([3.0, 6.0])) and torch.equal(y[:, 0], 3 * torch.arange(5.0))


def test_a_line_dataset_hands_over_its_own_tensors():
    line = LineDataset(seed=4)
    x, y = as_tensors(line)
    assert x is line.x and y is line.y


def test_the_line_lives_with_its_problem_and_is_still_exported():
    import optbench
    from optbench.problems import line

    assert optbench.LineDataset is line.LineDataset and optbench.least_squares is line.least_squares
    assert optbench.linear is line.linear and optbench.LeastSquares is line.LeastSquares


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "is empty"),
        ([(1.0, 2.0, 3.0)], "item 0 is tuple, not an \\(x, y\\) pair"),
        ([(1.0, 2.0), 5.0], "item 1 is float, not an \\(x, y\\) pair"),
        ([(1.0, 3.0), ([1.0, 2.0], 3.0)], "item 1 has x of 2 and y of 1 values, item 0 1 and 1"),
    ],
)
def test_bad_datasets_are_named(items, message):
    with pytest.raises(TypeError, match=message):
        as_tensors(Pairs(items))


def test_least_squares_of_one_repeated_x_is_the_mean():
    fit = least_squares(torch.full((4, 1), 2.0), torch.tensor([[1.0], [2.0], [3.0], [6.0]]))
    assert (fit.slope, fit.intercept, fit.mse) == (0.0, 3.0, 3.5)
