import inspect
from dataclasses import replace

import pytest
import torch
from torch import nn

from optbench import (
    LINE,
    OPTIMIZERS,
    SEED_PROFILE,
    UNSUPPORTED,
    Case,
    OptimizerInfo,
    Registry,
    UnknownOptimizerError,
)
from optbench.optimizers.registry import BF16_ROUNDS, BF16_STALLS
from optbench.problems import PROBLEMS

BATCH_SIZES = LINE.batch_sizes

ENTRIES = list(OPTIMIZERS.values())
TORCH_ENTRIES = [entry for entry in ENTRIES if entry.torch_name is not None]


def torch_optimizers() -> set[str]:
    return {
        name
        for name, value in vars(torch.optim).items()
        if inspect.isclass(value)
        and issubclass(value, torch.optim.Optimizer)
        and value is not torch.optim.Optimizer
    }


def test_every_torch_optimizer_is_registered_or_explained():
    registered = {entry.torch_name for entry in ENTRIES}
    missing = torch_optimizers() - registered - set(UNSUPPORTED)
    assert not missing, (
        f"torch.optim has optimizers optbench neither runs nor explains: {sorted(missing)}; "
        "add an OptimizerInfo to optbench/registry.py or a reason to UNSUPPORTED"
    )


def test_unsupported_ones_exist_and_are_not_also_registered():
    assert set(UNSUPPORTED) <= torch_optimizers()
    assert not set(UNSUPPORTED) & {entry.torch_name for entry in ENTRIES}
    assert all(reason for reason in UNSUPPORTED.values())


def test_registry_is_alphabetical_and_names_are_id_safe():
    assert list(OPTIMIZERS) == sorted(OPTIMIZERS)
    for entry in ENTRIES:
        assert entry.scenario(1).id == f"{entry.name}-bs1-cpu"


@pytest.mark.parametrize("entry", TORCH_ENTRIES, ids=lambda e: e.name)
def test_implementation_flags_match_the_torch_signature(entry):
    parameters = inspect.signature(getattr(torch.optim, entry.torch_name)).parameters
    assert entry.foreach == ("foreach" in parameters)
    assert entry.fused == ("fused" in parameters)


def _model_and_loss() -> tuple[nn.Linear, torch.Tensor]:
    model = nn.Linear(1, 1)
    loss = (model(torch.ones(4, 1)) - 3).square().mean()
    return model, loss


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_needs_closure_flag_is_true(entry):
    model, loss = _model_and_loss()
    optimizer = entry.factory(model.parameters(), **entry.hyperparams(1))
    loss.backward()
    if entry.needs_closure:
        with pytest.raises(TypeError):
            optimizer.step()
        optimizer.step(lambda: (model(torch.ones(4, 1)) - 3).square().mean())
    else:
        optimizer.step()


@pytest.mark.parametrize("entry", TORCH_ENTRIES, ids=lambda e: e.name)
def test_matrix_only_flag_is_true(entry):
    cls = getattr(torch.optim, entry.torch_name)
    vector = [nn.Parameter(torch.zeros(3))]
    if entry.matrix_only:
        with pytest.raises(ValueError):
            cls(vector)
    else:
        cls(vector)


def _run(cls, hyperparams, params, grads):
    optimizer = cls(params, **hyperparams)
    for step_grads in grads:
        for param, grad in zip(params, step_grads, strict=True):
            param.grad = grad.clone()
        optimizer.step()


@pytest.mark.parametrize("entry", [e for e in TORCH_ENTRIES if e.elementwise], ids=lambda e: e.name)
def test_elementwise_flag_is_true(entry):
    """Two tensors stepped together end exactly where their concatenation ends."""
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(5, generator=generator)
    grads = [torch.randn(5, generator=generator) * 3 for _ in range(25)]
    hyperparams = {**entry.hyperparams(10), "foreach": False}
    cls = getattr(torch.optim, entry.torch_name)
    pieces = [nn.Parameter(start[:3].clone()), nn.Parameter(start[3:].clone())]
    _run(cls, hyperparams, pieces, [(g[:3], g[3:]) for g in grads])
    whole = [nn.Parameter(start.clone())]
    _run(cls, hyperparams, whole, [(g,) for g in grads])
    torch.testing.assert_close(torch.cat([p.detach() for p in pieces]), whole[0].detach(), rtol=0, atol=0)


def test_muon_trains_the_weight_and_a_companion_the_bias():
    model = nn.Linear(1, 1)
    optimizer = OPTIMIZERS["muon"].factory(model.parameters(), **OPTIMIZERS["muon"].hyperparams(1))
    muon, companion = optimizer.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(companion, torch.optim.Adam)
    assert muon.param_groups[0]["params"] == [model.weight]
    assert companion.param_groups[0]["params"] == [model.bias]
    assert muon.param_groups[0]["weight_decay"] == 0.0
    before = [p.detach().clone() for p in model.parameters()]
    (model(torch.ones(4, 1)) - 3).square().mean().backward()
    optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_hyperparams_and_epochs_per_batch_size():
    sgd = OPTIMIZERS["sgd"]
    assert sgd.hyperparams(1) == {"lr": 0.001}
    assert sgd.hyperparams(10) == {"lr": 0.01}
    assert [sgd.epochs_for(bs) for bs in BATCH_SIZES] == [LINE.epochs_for(bs) for bs in BATCH_SIZES]
    assert sgd.epochs_for(7) == 20
    scenario = sgd.scenario(10, device="cpu", seed=4)
    assert (scenario.batch_size, scenario.epochs, scenario.seed) == (10, 20, 4)
    assert scenario.hyperparams_json == '{"lr": 0.01}'


def test_the_built_in_tuning_is_keyed_on_registered_problems():
    # The line's keys by hand; the suite's from the packaged tuned settings (tests/test_tuned.py).
    assert OPTIMIZERS["adam"].cases[("line", None, None)].hyperparams == {"lr": 0.3}
    assert OPTIMIZERS["adam"].cases[("line", 1, None)].hyperparams == {"lr": 0.03}
    for entry in ENTRIES:
        assert {key[0] for key in entry.cases} <= set(PROBLEMS), entry.name
        assert all(isinstance(case, Case) for case in entry.cases.values())


def test_case_keys_are_padded_and_checked():
    info = OptimizerInfo(
        "x",
        None,
        torch.optim.SGD,
        cases={("line",): Case({"lr": 1.0}), ("line", 1): Case(epochs=5), ("line", None, "float64"): Case()},
    )
    assert list(info.cases) == [("line", None, None), ("line", 1, None), ("line", None, "float64")]
    for key, message in (
        ("line", r"must be \(problem\[, batch size\[, dtype\]\]\)"),
        ((), r"must be \(problem"),
        (("line", 1, "float32", "x"), r"must be \(problem"),
        ((1, 1), "the problem must be a problem's name, or None for every one"),
        ((None,), "a key for every problem names a batch size alone"),
        ((None, 1, "float64"), "a key for every problem names a batch size alone"),
        (("line", "1"), "the batch size must be a positive integer or None"),
        (("line", True), "the batch size must be a positive integer or None"),
        (("line", 0), "the batch size must be a positive integer or None"),
        (("line", 1, torch.float32), "the dtype must be one of float32, float64, bfloat16, or None"),
        (("line", 1, "bf16"), "the dtype must be one of float32, float64, bfloat16, or None"),
    ):
        with pytest.raises(ValueError, match=message):
            OptimizerInfo("x", None, torch.optim.SGD, cases={key: Case()})
    with pytest.raises(ValueError, match=r"^x: the case \('line', 1, None\) is given twice$"):
        OptimizerInfo("x", None, torch.optim.SGD, cases={("line", 1): Case(), ("line", 1, None): Case()})
    with pytest.raises(ValueError, match=r"^x: the case \('line', 1\) is \{'lr': 0.1\}, not an optbench"):
        OptimizerInfo("x", None, torch.optim.SGD, cases={("line", 1): {"lr": 0.1}})


def test_the_most_specific_case_wins():
    info = OptimizerInfo(
        "x",
        None,
        torch.optim.SGD,
        defaults={"lr": 0.1, "momentum": 0.5},
        cases={
            ("line",): Case({"lr": 0.2}, epochs=7),
            ("line", 10): Case({"lr": 0.3}),
            ("line", None, "float64"): Case({"lr": 0.4}, epochs=9),
            ("line", 10, "float64"): Case({"lr": 0.5}),
            ("other",): Case({"lr": 9.0}, epochs=99),
        },
    )
    assert info.hyperparams(1) == {"lr": 0.2, "momentum": 0.5}  # the problem's over the defaults
    assert info.hyperparams(10) == {"lr": 0.3, "momentum": 0.5}  # the batch size's over the problem's
    assert info.hyperparams(1, dtype="float64") == {"lr": 0.4, "momentum": 0.5}
    assert info.hyperparams(10, dtype="float64") == {"lr": 0.5, "momentum": 0.5}
    assert info.hyperparams(10, dtype="bfloat16") == {"lr": 0.3, "momentum": 0.5}
    assert (info.epochs_for(10), info.epochs_for(10, dtype="float64")) == (7, 9)
    # Another problem gets its own cases (or the defaults) and its own epochs, none of the line's.
    other = replace(LINE, name="other", default_epochs=3, epochs={})
    plain = replace(LINE, name="plain", default_epochs=4, epochs={})
    assert (info.hyperparams(10, problem=other), info.epochs_for(10, problem=other)) == (
        {"lr": 9.0, "momentum": 0.5},
        99,
    )
    assert (info.hyperparams(10, problem=plain), info.epochs_for(10, problem=plain)) == (
        {"lr": 0.1, "momentum": 0.5},
        4,
    )
    scenario = info.scenario(10, dtype="float64")
    assert (scenario.epochs, scenario.hyperparams_json) == (9, '{"lr": 0.5, "momentum": 0.5}')


def test_seed_profile_is_the_tutorial():
    assert list(SEED_PROFILE) == ["seed.adam", "seed.sgd"]
    for name, cls in (("seed.sgd", torch.optim.SGD), ("seed.adam", torch.optim.Adam)):
        scenario = SEED_PROFILE[name].scenario(1)
        assert (scenario.batch_size, scenario.epochs, scenario.shuffle) == (1, 20, False)
        model = nn.Linear(1, 1)
        optimizer = scenario.optimizer(model.parameters())
        assert type(optimizer) is cls
        assert optimizer.defaults["lr"] == 0.01
    assert SEED_PROFILE["seed.adam"].scenario(1).id == "seed.adam-bs1-cpu"


def test_expected_failures_come_from_the_entry():
    lbfgs = OPTIMIZERS["lbfgs"]
    assert lbfgs.expected_failure(100) is None
    assert lbfgs.expected_failure(10) == (lbfgs.cases[("line", 10, None)].fails, False)
    assert lbfgs.expected_failure(10)[0].startswith("full-batch method: converged on 199 of 200 seeds")
    assert [bool(lbfgs.expected_failure(bs)) for bs in BATCH_SIZES] == [True, True, True, False]
    assert OPTIMIZERS["rprop"].expected_failure(1) == (
        OPTIMIZERS["rprop"].cases[("line", 1, None)].fails,
        False,
    )
    assert OPTIMIZERS["sgd"].expected_failure(1) is None
    explicit = OptimizerInfo(
        "x",
        None,
        torch.optim.SGD,
        cases={("line", 10): Case(fails="too slow"), ("line", 1): Case(fails="noisy", strict=False)},
    )
    assert explicit.expected_failure(10) == ("too slow", True)
    assert explicit.expected_failure(1) == ("noisy", False)
    assert explicit.expected_failure(100) is None
    assert explicit.expected_failure(10, problem=replace(LINE, name="other")) is None


def test_dtype_failures_are_cases_of_their_dtype():
    adam, sgd = OPTIMIZERS["adam"], OPTIMIZERS["sgd"]
    assert adam.expected_failure(1, dtype="bfloat16") == (BF16_STALLS.fails, True)
    assert sgd.expected_failure(1, dtype="bfloat16") == (BF16_ROUNDS.fails, False)
    assert adam.expected_failure(1) is None and adam.expected_failure(1, dtype="float64") is None
    assert adam.expected_failure(10, dtype="bfloat16") is None
    # The most specific failing case gives the reason: the dtype's over the batch size's.
    info = OptimizerInfo(
        "x",
        None,
        torch.optim.SGD,
        cases={("line", 1): Case(fails="noisy", strict=False), ("line", 1, "bfloat16"): Case(fails="stalls")},
    )
    assert (info.expected_failure(1), info.expected_failure(1, dtype="bfloat16")) == (
        ("noisy", False),
        ("stalls", True),
    )


def test_unknown_name_lists_the_choices():
    with pytest.raises(UnknownOptimizerError) as error:
        OPTIMIZERS["adamm"]
    assert str(error.value) == f"unknown optimizer 'adamm'; choose from {', '.join(OPTIMIZERS)}"


def test_entries_can_be_added_but_not_twice():
    extra = OptimizerInfo("zzz", None, torch.optim.SGD, defaults={"lr": 0.1})
    bigger = OPTIMIZERS.with_entries([extra])
    assert list(bigger)[-1] == "zzz" and "zzz" not in OPTIMIZERS
    with pytest.raises(ValueError, match="'sgd' is registered twice"):
        OPTIMIZERS.with_entries([OptimizerInfo("sgd", None, torch.optim.SGD)])
    retuned = OPTIMIZERS.with_entries(
        [OptimizerInfo("sgd", "SGD", torch.optim.SGD, defaults={"lr": 0.5})], replace=True
    )
    assert retuned["sgd"].hyperparams(1) == {"lr": 0.5} and len(retuned) == len(OPTIMIZERS)
    with pytest.raises(ValueError, match="'x' is registered twice"):
        OPTIMIZERS.with_entries([OptimizerInfo("x", None, torch.optim.SGD)] * 2, replace=True)
    assert isinstance(bigger, Registry)


def test_entries_are_frozen():
    with pytest.raises(TypeError):
        OPTIMIZERS["sgd"].defaults["lr"] = 1.0
    with pytest.raises(TypeError):
        OPTIMIZERS["sgd"].cases[("line", 1, None)] = Case({"lr": 1.0})
    with pytest.raises(TypeError):
        OPTIMIZERS["sgd"].cases[("line", 1, None)].hyperparams["lr"] = 1.0
