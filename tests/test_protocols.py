"""Driving protocols as capability flags: train/eval modes, create_graph, and where specs set them."""

import json
import warnings

import pytest
import torch
from protocols import AveragedSGD, ExactStepGD

from optbench import OptimizerInfo, fit, prepare, run, summarise
from optbench.engine import Prepared, Sequential, Vectorised, _train_one
from optbench.optimizers import specs

CPU = ("--optbench-devices=cpu", "-p", "no:cacheprovider")


def averaged(**flags) -> OptimizerInfo:
    # The mean of the iterates lags the iterate: a full batch's 20 steps need a larger lr.
    full_batch = specs.Case({"lr": 0.1})
    return OptimizerInfo(
        "avg", None, AveragedSGD, defaults={"lr": 0.01}, cases={(None, 100): full_batch}, **flags
    )


def exact(**flags) -> OptimizerInfo:
    return OptimizerInfo("exact", None, ExactStepGD, defaults={"lr": 1.0}, **flags)


def full_loss(prepared: Prepared) -> float:
    with torch.no_grad():
        return prepared.scenario.problem.loss(prepared.model(prepared.x), prepared.y).item()


def test_without_train_eval_a_moded_optimizer_fails_with_its_own_error():
    with pytest.raises(RuntimeError, match="not in train mode when step is called"):
        run(averaged().scenario(10))


@pytest.mark.parametrize("batch_size", [10, 100])
def test_train_eval_records_the_evaluation_iterate(batch_size):
    prepared = prepare(averaged(train_eval=True).scenario(batch_size))
    record = summarise(fit(prepared))
    assert record["status"] == "converged"
    evaluated = full_loss(prepared)
    assert record["final_loss"] == pytest.approx(evaluated, rel=1e-6)
    assert record["epoch_loss"][-1] == pytest.approx(evaluated, rel=1e-6)
    prepared.optimizer.train()  # the training iterate: another point, with another loss
    assert abs(full_loss(prepared) - evaluated) > 1e-3 * evaluated


def test_a_full_batch_train_eval_run_never_takes_the_step_loss_for_the_evaluated_one():
    prepared = prepare(averaged(train_eval=True).scenario(100))
    with pytest.raises(ValueError, match="train_eval"):
        _train_one(prepared, reuse_step_loss=True)


def test_train_eval_replicas_match_their_seeds_run_alone_bit_for_bit():
    ready = prepare(averaged(train_eval=True, elementwise=True).scenario(10, seeds=4))
    assert isinstance(ready, Vectorised)
    stacked = summarise(fit(ready))
    alone = prepare(averaged(train_eval=True).scenario(10, seeds=4))
    assert isinstance(alone, Sequential)
    one_by_one = summarise(fit(alone))
    for name in ("seed_final_loss", "seed_excess_loss", "seed_distance", "epoch_loss", "step_loss"):
        assert stacked[name] == one_by_one[name], name


def test_train_eval_on_an_optimizer_without_modes_is_one_line():
    info = OptimizerInfo("sgd", None, torch.optim.SGD, defaults={"lr": 0.01}, train_eval=True)
    with pytest.raises(TypeError, match=r"flagged train_eval but SGD has no train\(\) or eval\(\); drop"):
        run(info.scenario(10))


def test_without_create_graph_a_hessian_vector_optimizer_fails_with_torchs_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        run(exact().scenario(100))


@pytest.mark.parametrize("batch_size", [10, 100])
def test_create_graph_gives_the_optimizer_its_hessian_vector_products(batch_size):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's reference-cycle warning is handled, not leaked
        prepared = prepare(exact(create_graph=True).scenario(batch_size))
        record = summarise(fit(prepared))
    assert record["status"] == "converged"
    if batch_size == 100:  # full batch: exact steps on a quadratic reach its minimum
        assert record["excess_loss"] < 1e-4
    assert all(p.grad is None for p in prepared.model.parameters())  # no cycle left behind


def test_create_graph_seeds_never_run_as_replicas():
    info = exact(create_graph=True, elementwise=True)
    assert info.auto_seeds() == 1
    assert isinstance(prepare(info.scenario(10, seeds=2)), Sequential)


@pytest.mark.parametrize(
    ("spec", "flags"),
    [
        ("a=protocols:AveragedSGD[train_eval]", {"train_eval"}),
        ('a=protocols:ExactStepGD[create_graph]{"lr": 0.5}', {"create_graph"}),
        ("a=torch.optim:SGD[elementwise, needs_closure]", {"elementwise", "needs_closure"}),
        ("a=torch.optim:SGD", set()),
    ],
)
def test_the_command_line_sets_flags_in_brackets(spec, flags):
    info = specs.parse_option(spec)
    assert {flag for flag in specs.FLAGS if getattr(info, flag)} == flags


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("a=torch.optim:SGD[fast]", "unknown flag 'fast' in brackets; choose from elementwise"),
        ("a=torch.optim:SGD[train_eval", "flags go in one pair of brackets"),
        ("a=torch.optim:SGD[train_eval]", r"train_eval is set but SGD has no train\(\) or eval\(\)"),
    ],
)
def test_bad_flags_are_one_line(spec, message):
    with pytest.raises(specs.SpecError, match=message):
        specs.parse_option(spec)


def test_pyproject_sets_the_new_flags(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        "[tool.optbench.optimizers.avg]\n"
        'class = "protocols:AveragedSGD"\n'
        "train_eval = true\n"
        "[tool.optbench.optimizers.exact]\n"
        'class = "protocols:ExactStepGD"\n'
        "create_graph = true\n"
    )
    found = {info.name: info for info in specs.from_pyproject(tmp_path / "pyproject.toml")}
    assert found["avg"].train_eval and not found["avg"].create_graph
    assert found["exact"].create_graph and not found["exact"].train_eval


@pytest.mark.parametrize(
    "spec",
    [
        'a=torch.optim:SGD{"lr": 0.1, "momentum": 0.5, "1": {"lr": 0.01}, "100": {"momentum": 0.9}}',
        'a=torch.optim:SGD{"1": {"lr": 0.01}, "lr": 0.1, "100": {"momentum": 0.9}, "momentum": 0.5}',
    ],
)
def test_keyword_arguments_keyed_by_batch_size_apply_there_alone(spec):
    info = specs.parse_option(spec)
    assert info.hyperparams(1) == {"lr": 0.01, "momentum": 0.5}
    assert info.hyperparams(10) == {"lr": 0.1, "momentum": 0.5}
    assert info.hyperparams(100) == {"lr": 0.1, "momentum": 0.9}
    for problem in ("line", "rosenbrock"):  # on every problem
        assert info.cases[(None, 1, None)].hyperparams == {"lr": 0.01}, problem
    assert json.loads(info.scenario(1).hyperparams_json) == {"lr": 0.01, "momentum": 0.5}


def test_pyproject_keys_keyword_arguments_by_batch_size(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.optbench.optimizers.a]\nclass = "torch.optim:SGD"\n'
        '[tool.optbench.optimizers.a.kwargs]\nlr = 0.1\n"10" = {lr = 0.02}\n'
        '[tool.optbench.optimizers.a.kwargs."1"]\nlr = 0.01\n'
    )
    (info,) = specs.from_pyproject(tmp_path / "pyproject.toml")
    assert [info.hyperparams(size)["lr"] for size in (1, 10, 50)] == [0.01, 0.02, 0.1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ('{"0": {"lr": 0.1}}', "batch size '0' of the keyword arguments must be positive"),
        ('{"10": 0.1}', r"batch size '10' holds 0.1; give it the keyword arguments for that batch size"),
        ('{"10": {"5": {"lr": 1}}}', "batch size '10' holds"),
        ('{"10": {"lr": -1}}', r"at batch size 10: SGD\(lr=-1\) fails: Invalid learning rate"),
        ('{"\u00b2": {"lr": 1}}', "got an unexpected keyword argument"),  # a digit to isdigit(), not to int()
    ],
)
def test_bad_keyword_arguments_by_batch_size_are_one_line(kwargs, message):
    with pytest.raises(specs.SpecError, match=message):
        specs.parse_option(f"a=torch.optim:SGD{kwargs}")


def test_a_key_for_every_problem_names_a_batch_size_alone():
    with pytest.raises(ValueError, match=r"a key for every problem names a batch size alone"):
        OptimizerInfo("a", None, torch.optim.SGD, cases={(None,): specs.Case({"lr": 1.0})})


@pytest.mark.parametrize(
    ("spec", "passed"),
    [
        ('avg=protocols:AveragedSGD[train_eval]{"lr": 0.1}', True),
        ('exact=protocols:ExactStepGD[create_graph]{"lr": 1.0}', True),
        ('avg=protocols:AveragedSGD{"lr": 0.1}', False),
        ('exact=protocols:ExactStepGD{"lr": 1.0}', False),
    ],
)
def test_the_flags_drive_an_added_optimizer_through_the_plugin(small_matrix, spec, passed):
    name = specs.option_name(spec)
    result = small_matrix.runpytest(
        f"--optbench-optimizer={spec}",
        f"--optbench-optimizers={name}",
        "--optbench-problems=line",
        "--optbench-batch-sizes=100",
        "--benchmark-disable",
        *CPU,
    )
    result.assert_outcomes(passed=1 if passed else 0, failed=0 if passed else 1)
