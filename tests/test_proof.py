"""An added optimizer's elementwise claim is proven on throwaway runs, never trusted."""

import contextlib
import json
import subprocess
import sys
import time

import pytest
import torch
from protocols import AveragedSGD, Exploding, NormalisedSGD

from optbench import OPTIMIZERS, OptimizerInfo, Registry, prepare, run
from optbench.engine import Sequential, Vectorised
from optbench.optimizers import proof, specs

CPU = ("--optbench-devices=cpu", "-p", "no:cacheprovider")


@pytest.mark.parametrize("name", [name for name in OPTIMIZERS if name != "lbfgs"])
def test_the_proof_agrees_with_every_built_in_flag(name):
    info = OPTIMIZERS[name]
    found = proof.prove_elementwise(info)
    assert found.proven == info.elementwise, found.reason


def test_the_proof_does_not_try_what_never_runs_as_replicas():
    found = proof.prove_elementwise(OPTIMIZERS["lbfgs"])
    assert not found.proven and "never run as replicas" in found.reason


STACKED = "stepped as stacked replicas, replica"


@pytest.mark.parametrize(
    ("info", "reason"),
    [
        # A tensor's norm: the stacked tensor's norm is every replica's together.
        (
            OptimizerInfo("norm", None, NormalisedSGD, defaults={"lr": 0.01}),
            f"{STACKED} .* differs from its own run by up to",
        ),
        # Factored second moments mix a matrix's rows and columns; Muon orthogonalises the matrix.
        (OPTIMIZERS["adafactor"], STACKED),
        (OPTIMIZERS["muon"], STACKED),
    ],
    ids=["norm", "adafactor", "muon"],
)
def test_a_false_claim_is_an_error_naming_the_difference(info, reason):
    claimed = OptimizerInfo(info.name, None, info.factory, defaults=info.hyperparams(10), elementwise=True)
    with pytest.raises(proof.ClaimError, match=f"it claims elementwise, but .*{reason}.*; drop elementwise"):
        proof.prove_added(Registry([claimed]), [info.name])


def test_the_gradients_are_given_so_the_proof_holds_whatever_the_machines_products_round():
    # The proof steps the optimizer alone: no forward or backward pass, whose batched products may
    # round apart from the same products alone (MKL without MKL_CBWR), takes part in it.
    calls = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            calls.append([tuple(p.grad.shape) for group in self.param_groups for p in group["params"]])
            return super().step(closure)

    assert proof.prove_elementwise(OptimizerInfo("rec", None, Recording, defaults={"lr": 0.1})).proven
    stacked = [tuple((proof.REPLICAS, *shape)) for shape in proof.SHAPES]
    assert calls[0] == stacked and calls[proof.STEPS] == [tuple(shape) for shape in proof.SHAPES]
    assert len(calls) == proof.STEPS * (1 + proof.REPLICAS)


def test_every_setting_of_its_batch_sizes_is_proven():
    # Elementwise with its common keyword arguments, not with those it takes at batch size 100.
    class NormAtLargeLr(torch.optim.SGD):
        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if group["lr"] > 1 and p.grad is not None:
                        p.grad.div_(p.grad.norm())
            return super().step(closure)

    plain = OptimizerInfo("x", None, NormAtLargeLr, defaults={"lr": 0.1})
    assert proof.prove_elementwise(plain).proven
    keyed = OptimizerInfo(
        "x", None, NormAtLargeLr, defaults={"lr": 0.1}, cases={(None, 100): specs.Case({"lr": 2.0})}
    )
    assert not proof.prove_elementwise(keyed).proven


def test_an_optimizer_that_passes_without_the_flag_runs_its_seeds_as_replicas():
    info = OptimizerInfo("avg", None, AveragedSGD, defaults={"lr": 0.01}, train_eval=True)
    assert not info.elementwise and info.auto_seeds() == 1
    registry, said = proof.prove_added(Registry([info]), ["avg"])
    proven = registry["avg"]
    assert proven.elementwise and proven.proven
    assert proven.auto_seeds() == 32
    assert isinstance(prepare(proven.scenario(10, seeds=4)), Vectorised)
    assert run(proven.scenario(10, seeds=2))["elementwise"] == "proven"
    assert run(OPTIMIZERS["adam"].scenario(10, seeds=2))["elementwise"] == "declared"
    assert run(OPTIMIZERS["adafactor"].scenario(10))["elementwise"] == ""
    assert said == {"avg": "avg: proven elementwise on a throwaway run; its seeds run as replicas"}


def test_an_optimizer_that_fails_without_the_flag_keeps_its_seeds_apart():
    info = OptimizerInfo("norm", None, NormalisedSGD, defaults={"lr": 0.01})
    registry, said = proof.prove_added(Registry([info]), ["norm"])
    assert not registry["norm"].elementwise
    assert isinstance(prepare(registry["norm"].scenario(10, seeds=2)), Sequential)
    assert said["norm"].startswith(f"norm: not elementwise ({STACKED}")


def test_an_optimizer_that_raises_while_proven():
    plain = OptimizerInfo("boom", None, Exploding, defaults={"lr": 0.01})
    registry, said = proof.prove_added(Registry([plain]), ["boom"])
    assert not registry["boom"].elementwise
    assert "raised ZeroDivisionError: third step" in said["boom"]
    claimed = OptimizerInfo("boom", None, Exploding, defaults={"lr": 0.01}, elementwise=True)
    with pytest.raises(
        proof.ClaimError, match="proving its elementwise claim on a throwaway run raised Zero"
    ):
        proof.prove_added(Registry([claimed]), ["boom"])


def test_a_false_claim_on_the_command_line_is_a_one_line_usage_error(small_matrix):
    result = small_matrix.runpytest("--optbench-optimizer=norm=protocols:NormalisedSGD[elementwise]", *CPU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: norm (from --optbench-optimizer *): it claims elementwise, but stacked replicas do not "
            "match *"
        ]
    )
    assert "Traceback" not in result.stderr.str()


def test_an_added_optimizer_proven_on_the_command_line_trains_as_many_seeds_as_the_built_ins(small_matrix):
    result = small_matrix.runpytest(
        '--optbench-optimizer=lion=lion_pytorch:Lion{"lr": 0.005}',
        "--optbench-optimizers=lion",
        "--optbench-problems=line",
        "--optbench-batch-sizes=1",
        "--benchmark-json=out.json",
        "--benchmark-min-rounds=1",
        *CPU,
    )
    result.stdout.fnmatch_lines(
        ["optbench: lion: proven elementwise on a throwaway run; its seeds run as replicas"]
    )
    result.assert_outcomes(passed=1)
    (saved,) = json.loads((small_matrix.path / "out.json").read_text())["benchmarks"]
    assert saved["extra_info"]["seeds"] == 32
    assert saved["extra_info"]["seed_runs"] == "vectorised"
    assert saved["extra_info"]["elementwise"] == "proven"  # the record says so


def test_the_tune_command_proves_an_added_optimizer_too(tmp_path):
    module = tmp_path / "normed.py"
    module.write_text(
        "import torch\n"
        "class Normed(torch.optim.SGD):\n"
        "    @torch.no_grad()\n"
        "    def step(self, closure=None):\n"
        "        for group in self.param_groups:\n"
        "            for p in group['params']:\n"
        "                p.grad.div_(p.grad.norm() + 1e-12)\n"
        "        return super().step(closure)\n"
    )
    command = [sys.executable, "-m", "optbench.tune", "--optimizer", "normed=normed:Normed[elementwise]"]
    command += ["--optimizers", "normed", "--problems", "line", "--batch-sizes", "10", "--lr-grid", "0.1"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert "normed (from --optbench-optimizer" in line and "it claims elementwise, but" in line
    assert "Traceback" not in result.stderr


class Hanging(torch.optim.SGD):
    """A step that never returns, and swallows every ``Exception`` on the way."""

    def step(self, closure=None):
        while True:
            with contextlib.suppress(Exception):
                time.sleep(0.01)


def test_a_proof_that_runs_past_its_limit_stops_there():
    plain = OptimizerInfo("hang", None, Hanging, defaults={"lr": 0.01})
    start = time.perf_counter()
    registry, said = proof.prove_added(Registry([plain]), ["hang"], seconds=0.5)
    assert time.perf_counter() - start < 5
    assert not registry["hang"].elementwise
    assert said["hang"] == "hang: not proven elementwise (its throwaway run ran past 0.5 s)"
    claimed = OptimizerInfo("hang", None, Hanging, defaults={"lr": 0.01}, elementwise=True)
    message = r"hang \(added\): proving its elementwise claim ran past 0.5 s"
    with pytest.raises(proof.ClaimError, match=message):
        proof.prove_added(Registry([claimed]), ["hang"], seconds=0.5)
