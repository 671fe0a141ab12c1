"""K seeds of one scenario trained as one vectorised run, for optimizers whose update is elementwise.

The K fresh models are stacked into one set of parameters with a leading replica
dimension (``torch.func.stack_module_state``); each replica keeps its own data
noise, initialisation and shuffle order. A step computes every replica's loss
and gradient at once (``vmap`` of ``grad_and_value`` of ``functional_call``),
and the optimizer updates one stacked tensor per parameter. For an optimizer
whose update is elementwise, each replica then follows the trajectory it would
follow alone; the tests prove that per optimizer against sequential runs.

The step is traced once per batch shape into a graph of plain tensor operations
(``make_fx``), so a step pays neither autograd's nor vmap's dispatch again:
that is what makes 32 replicas cost little more than one model. Tracing takes longer than
building the models, so the graphs of the last few scenarios are kept: a benchmark's rounds
each prepare the same scenario afresh, and trace it once.

A learning-rate sweep stacks every learning rate's replicas too: each replica's
parameters lie side by side in one row of one tensor, the optimizer gets one
parameter group per learning rate holding a view of its rows, and torch's own
update runs on each group as it would on a run of that learning rate alone.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap
from torch.fx.experimental.proxy_tensor import make_fx
from torch.optim.lr_scheduler import LRScheduler

from optbench.problems import Loss
from optbench.scenario import OptimizerFactory, OptimizerLike

Graph = Callable[..., tuple[torch.Tensor, ...]]

EXACT_DTYPES = ("float32", "float64")
"""The dtypes in which a replica is proven to end exactly where its seed alone ends
(tests/test_replicas.py). In bfloat16 the traced gradient rounds differently from
autograd's bfloat16 kernels, by a unit in the last place that the trajectory then
carries on (up to 0.34 in the weight after 300 Rprop steps), so bfloat16 seeds run
one after another."""


def applies(*, elementwise: bool, needs_closure: bool, dtype: str, create_graph: bool = False) -> bool:
    """Whether seeds of such an optimizer run as replicas.

    They do for an elementwise update that needs no closure and no gradient graph (the traced
    step hands the optimizer plain gradients, so no Hessian-vector product), in a dtype of
    ``EXACT_DTYPES``; the engine and the registry's ``auto`` seeds both ask here.
    """
    return elementwise and not needs_closure and not create_graph and dtype in EXACT_DTYPES


TRACED_KEPT = 4
"""How many keys' traced graphs ``prepare`` keeps, the most recently used."""

_traced: OrderedDict[Hashable, tuple[dict[int, Graph], Graph]] = OrderedDict()


def _usable(key: Hashable | None) -> Hashable | None:
    """``key`` where it can key the kept graphs, else ``None`` (traced afresh, as before).

    A scenario holding a list (JSON keyword arguments such as ``betas``) cannot be hashed; that
    must not stop its run.
    """
    try:
        hash(key)
    except TypeError:
        return None
    return key


class NotVectorisableError(RuntimeError):
    """The models cannot be stacked or traced as replicas; their seeds must run one after another."""


@dataclass
class Replicas:
    """K stacked models, one optimizer over the stacked parameters, the K data sets on the device.

    Attributes:
        params: one stacked parameter per model parameter, replica dimension first;
            the optimizer holds exactly these. In a sweep (``lrs``), one parameter per
            learning rate instead: a view of its replicas' rows of one tensor that holds
            each replica's parameters side by side, which ``inputs`` are views of too.
        optimizer: built by the scenario's factory from ``params``.
        x: inputs, ``(K, n, ...)``; ``y`` likewise.
        seeds: each replica's seed, which also seeds its shuffle.
    """

    params: tuple[nn.Parameter, ...]
    optimizer: OptimizerLike
    x: torch.Tensor
    y: torch.Tensor
    seeds: tuple[int, ...]
    batch_size: int
    epochs: int
    shuffle: bool
    step_graphs: dict[int, Graph]
    """The traced step, by batch length (the last batch may be shorter)."""
    loss_graph: Graph
    names: tuple[str, ...]
    """The model's parameter names, in the order of ``params``."""
    template: nn.Module
    """A copy of the first model on the device, into which ``model`` loads one replica."""
    inputs: tuple[torch.Tensor, ...] = field(default=())
    """The parameters' tensors as the graphs take them (aliases of ``params``, updated with them)."""
    grad_buffers: tuple[torch.Tensor, ...] = field(default=())
    """For a sweep (``lrs``): where each step's gradients are copied, views of one stacked gradient
    whose rows the groups' parameters hold as their ``.grad``. Empty: each step's gradient is assigned."""
    train_eval: bool = False
    """Call the optimizer's ``train()`` before each epoch's steps and ``eval()`` before each evaluation."""
    schedulers: tuple[LRScheduler, ...] = ()
    """Learning-rate schedulers of the optimizer, stepped after each of its steps (``optbench.schedules``)."""


@dataclass
class Trace:
    """What one vectorised run leaves on the host, per replica."""

    seconds: float
    epochs_done: list[int]
    """Epochs each replica trained before its full-data loss became NaN or infinite (or all)."""
    epoch_loss: list[list[float]]
    """Per replica: the full-data loss before training and after each epoch it trained."""
    losses: torch.Tensor
    """``(steps, K)`` per-step losses on the host."""


def prepare(
    models: Sequence[nn.Module],
    data: Sequence[tuple[torch.Tensor, torch.Tensor]],
    optimizer: OptimizerFactory,
    *,
    loss: Loss,
    seeds: Sequence[int],
    batch_size: int,
    epochs: int,
    shuffle: bool,
    device: torch.device,
    lrs: Sequence[float] | None = None,
    key: Hashable | None = None,
    train_eval: bool = False,
) -> Replicas:
    """Stacks K fresh models and K data sets on ``device``, builds the optimizer and traces the step.

    A step minimises ``loss(model(x), y)``, the problem's loss, for every replica at once.
    With ``lrs`` (L learning rates, K a multiple of L), the optimizer is built from L parameter
    groups, the i-th holding a view of the i-th K / L replicas with ``lr`` set to ``lrs[i]``: each
    replica's parameters side by side in one row of one tensor, which the graphs take views of.

    With ``key``, the graphs traced for an equal key are reused instead of traced again: pass
    one that fixes the models' structure, the data's shapes, the loss, the device and the dtype
    (``optbench.engine.prepare`` passes the scenario, from which all of them are built).
    With ``train_eval``, training calls the optimizer's ``train()`` before each epoch's steps and
    its ``eval()`` before every full-data loss.

    Raises:
        NotVectorisableError: the models differ in structure or have buffers, the
            data sets differ in shape, the model cannot be traced under ``vmap``
            (random layers, data-dependent control flow), or (a sweep) the optimizer
            does not keep one group per learning rate as given.
        ValueError: (a sweep) the replicas do not split evenly over ``lrs``.
    """
    try:
        stacked, buffers = stack_module_state([model.to(device) for model in models])
        x = torch.stack([pair[0] for pair in data]).to(device)
        y = torch.stack([pair[1] for pair in data]).to(device)
    except (RuntimeError, ValueError) as error:
        raise NotVectorisableError(f"the replicas cannot be stacked ({error})") from None
    if buffers:
        # BatchNorm's running statistics and the like are updated in place, which
        # replicas traced as one graph would not reproduce seed by seed.
        raise NotVectorisableError(f"the model has buffers ({', '.join(buffers)})")
    names = tuple(stacked)
    params = tuple(nn.Parameter(stacked[name].detach()) for name in names)
    inputs = tuple(p.detach() for p in params)
    flat = None
    if lrs is not None:  # a sweep: every replica's parameters as one row of one tensor
        flat = torch.cat([tensor.reshape(len(models), -1) for tensor in inputs], dim=1)
        inputs = _columns(flat, inputs)
    base = copy.deepcopy(models[0]).to("meta")

    def objective(*tensors: torch.Tensor) -> torch.Tensor:
        state = dict(zip(names, tensors[:-2], strict=True))
        return loss(functional_call(base, state, (tensors[-2],)), tensors[-1])

    def step(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        grads, value = grad_and_value(objective, argnums=tuple(range(len(names))))(*tensors)
        return (*grads, value)

    size = x.shape[1]
    batch_size = min(batch_size, size)
    lengths = {batch_size, size % batch_size or batch_size}
    key = _usable(key)
    if key is not None and key in _traced:
        _traced.move_to_end(key)
        step_graphs, loss_graph = _traced[key]
    else:
        try:
            with torch.no_grad():
                step_graphs = {
                    length: make_fx(vmap(step))(
                        *inputs, x[:, :length].contiguous(), y[:, :length].contiguous()
                    )
                    for length in lengths
                }
                loss_graph = make_fx(vmap(objective))(*inputs, x, y)
        except Exception as error:  # vmap and tracing fail in many ways, all meaning "not stackable"
            reason = f"{type(error).__name__}: {error}"
            raise NotVectorisableError(f"the model cannot be traced as replicas ({reason})") from None
        if key is not None:
            _traced[key] = (step_graphs, loss_graph)
            while len(_traced) > TRACED_KEPT:
                _traced.popitem(last=False)

    held, built, grad_buffers = (
        (params, optimizer(params), ()) if flat is None else _groups(optimizer, flat, inputs, lrs or ())
    )
    return Replicas(
        params=held,
        optimizer=built,
        x=x,
        y=y,
        seeds=tuple(seeds),
        batch_size=batch_size,
        epochs=epochs,
        shuffle=shuffle,
        step_graphs=step_graphs,
        loss_graph=loss_graph,
        names=names,
        template=copy.deepcopy(models[0]).to(device),
        inputs=inputs,
        grad_buffers=grad_buffers,
        train_eval=train_eval,
    )


def _columns(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Views of ``flat``'s columns, one per tensor of ``like``, each shaped as that tensor."""
    views, start = [], 0
    for tensor in like:
        width = tensor[0].numel()
        views.append(flat[:, start : start + width].view(tensor.shape))
        start += width
    return tuple(views)


def _groups(
    factory: OptimizerFactory, flat: torch.Tensor, inputs: Sequence[torch.Tensor], lrs: Sequence[float]
) -> tuple[tuple[nn.Parameter, ...], OptimizerLike, tuple[torch.Tensor, ...]]:
    """A sweep's optimizer: one parameter group per learning rate, holding its rows of ``flat``.

    Each group holds one parameter, a view of its replicas' rows (every parameter of a replica
    side by side), so torch's update runs once per learning rate, not once per learning rate and
    parameter. For an elementwise update that is exact: the registry's ``elementwise`` flag is
    proven by stepping two tensors together against their concatenation (tests/test_registry.py).

    Returns:
        The parameters the optimizer holds, the optimizer, and views of the stacked gradient shaped
        as ``inputs``, into which each step's gradients are copied.
    """
    count = flat.shape[0]
    if not lrs or count % len(lrs):
        raise ValueError(f"{count} replicas cannot be split evenly over {len(lrs)} learning rates")
    per = count // len(lrs)
    grad = torch.zeros_like(flat)
    held, groups = [], []
    for index, lr in enumerate(lrs):
        rows = slice(index * per, (index + 1) * per)
        param = nn.Parameter(flat[rows])  # a view: its updates land in the stack
        param.grad = grad[rows]
        held.append(param)
        groups.append({"params": [param], "lr": lr})
    built = factory(groups)  # type: ignore[arg-type]
    found = list(getattr(built, "param_groups", ()))
    same = len(found) == len(held) and all(
        len(group.get("params", ())) == 1 and group["params"][0] is param and group.get("lr") == lr
        for group, param, lr in zip(found, held, lrs, strict=False)
    )
    if not same:
        # An optimizer that merges, reorders or adds groups, or changes a group's lr, would train
        # other learning rates than the sweep's: its points run one after another instead.
        raise NotVectorisableError("the optimizer does not keep one group per learning rate, as given")
    return tuple(held), built, _columns(grad, inputs)


def train(replicas: Replicas) -> Trace:
    """Trains every replica once; the timed part of a benchmark round.

    As in the one-model loop, nothing waits for the device until the end except
    the per-epoch check, which stops the run once every replica's full-data loss
    is NaN or infinite.
    """
    r = replicas
    x, y, inputs, params, optimizer, buffers = r.x, r.y, r.inputs, r.params, r.optimizer, r.grad_buffers
    device = x.device
    count, size = x.shape[0], x.shape[1]
    epoch_loss = torch.empty(r.epochs + 1, count, device=device, dtype=x.dtype)
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in r.seeds] if r.shuffle else None
    rows = torch.arange(count, device=device).unsqueeze(1)
    batches = _batches(x, y, r.batch_size)
    graphs = r.step_graphs
    losses: list[torch.Tensor] = []
    schedulers = r.schedulers
    groups = list(optimizer.param_groups) if buffers else []

    modes = r.train_eval

    start = time.perf_counter()
    with torch.no_grad():
        if modes:
            optimizer.eval()  # type: ignore[attr-defined]  # the engine checked it has modes
        epoch_loss[0] = r.loss_graph(*inputs, x, y)
        epochs_done = 0
        for epoch in range(1, r.epochs + 1):
            if generators is not None:
                order = torch.stack([torch.randperm(size, device=device, generator=g) for g in generators])
                batches = _batches(x[rows, order], y[rows, order], r.batch_size)
            if modes:
                optimizer.train()  # type: ignore[attr-defined]
            for xb, yb in batches:
                *grads, loss = graphs[xb.shape[1]](*inputs, xb, yb)
                if buffers:
                    for buffer, grad in zip(buffers, grads, strict=True):
                        buffer.copy_(grad)
                else:
                    for param, grad in zip(params, grads, strict=True):
                        param.grad = grad
                optimizer.step()
                if schedulers:
                    _step_schedules(schedulers, optimizer, groups)
                losses.append(loss)
            if modes:
                optimizer.eval()  # type: ignore[attr-defined]
            epoch_loss[epoch] = r.loss_graph(*inputs, x, y)
            epochs_done = epoch
            finite = torch.isfinite(epoch_loss[epoch])
            if not finite.any():
                break
            if groups:  # a learning rate whose replicas all diverged stops there, as its own run would
                alive = finite.view(len(groups), -1).any(dim=1).tolist()
                optimizer.param_groups[:] = [group for group, kept in zip(groups, alive, strict=True) if kept]
    if groups:
        optimizer.param_groups[:] = groups  # as built: every learning rate's group again
    host_losses = torch.stack(losses).cpu() if losses else epoch_loss[:0].cpu()
    host_loss = epoch_loss[: epochs_done + 1].cpu()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start

    finite = torch.isfinite(host_loss)
    done = []
    for replica in range(count):
        bad = (~finite[1:, replica]).nonzero()
        done.append(int(bad[0]) + 1 if len(bad) else epochs_done)
    return Trace(
        seconds=seconds,
        epochs_done=done,
        epoch_loss=[host_loss[: done[k] + 1, k].tolist() for k in range(count)],
        losses=host_losses,
    )


def _step_schedules(
    schedulers: Sequence[LRScheduler], optimizer: OptimizerLike, groups: list[dict[str, Any]]
) -> None:
    """Steps every scheduler once, over every group of a sweep, the ones left out included.

    A scheduler sets each group's lr by its position among the groups it was built with, so the
    groups of learning rates whose replicas all diverged are put back while it steps.
    """
    if not groups or len(optimizer.param_groups) == len(groups):
        for scheduler in schedulers:
            scheduler.step()
        return
    kept = list(optimizer.param_groups)
    optimizer.param_groups[:] = groups
    try:
        for scheduler in schedulers:
            scheduler.step()
    finally:
        optimizer.param_groups[:] = kept


def model(replicas: Replicas, index: int) -> nn.Module:
    """Replica ``index`` as a model of its own: ``replicas.template`` holding that replica's parameters.

    The template is reused, so the model is only valid until the next call.
    """
    state = {name: param[index] for name, param in zip(replicas.names, replicas.inputs, strict=True)}
    replicas.template.load_state_dict(state)
    return replicas.template


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Contiguous ``(K, b, ...)`` batches, as the traced step expects."""
    return [
        (xb.contiguous(), yb.contiguous())
        for xb, yb in zip(x.split(batch_size, dim=1), y.split(batch_size, dim=1), strict=True)
    ]
