"""Conformance checks every prunekit pruner must pass, reusable by plugin authors.

:func:`check_pruner` drives a pruner exactly as the core's runner does, on a
LeNet-5 with AdamW (so Adam state exists for state-based pruners), and raises
``AssertionError`` naming the broken rule::

    from prunekit.testing.pruner_conformance import check_pruner

    def test_my_pruner_conforms():
        check_pruner(my_factory, options={"scope": "global"})

The rules:

- after ``update_masks(s)`` the weights the forward pass uses have sparsity ``s``
  (within half a percentage point, for ties), over the prunable set;
- every training step after that keeps sparsity ``s`` (``before_step``, the
  optimizer step, ``update_masks`` whenever ``is_update_step(step)`` says so, as
  the runner does, and ``enforce``); once a pruner has changed its masks on its
  own cadence (drop and grow), only "at least ``s``" is required, since weights
  it grows start at exactly zero (RigL, SET) until training moves them;
- a later update to a higher ``s`` reaches it too;
- ``update_masks(s, 0)`` before any gradient or optimizer state exists (what the
  ``constant`` schedule asks) gives sparsity ``s`` by the end of the first step
  (or of step ``first_masks_after``, for a pruner that scores several batches
  first; skipped with ``step_zero=False``, for pruners that do not support the
  constant schedule);
- ``state_tensors()`` returns tensors named ``"<what>:<target name>"`` for real
  targets, and ``transient_bytes()`` non-negative integers named the same way;
- ``state_dict()`` restored into a fresh pruner gives the same state tensors;
- ``Pruner`` methods accept being called before any optimizer state exists.

The pruner is bound to the optimizer and started with a
:class:`~prunekit.core.sparsity.pruner.TrainingPlan` of ``PLAN_STEPS`` steps and the
constant schedule, so a pruner with its own cadence (``is_update_step``) updates
its masks during the training steps; pass options that make that cadence short
(e.g. ``delta_t=2``) to exercise it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.builtin.models import lenet5
from prunekit.builtin.optimizers import adamw
from prunekit.core.sparsity.pruner import TrainingPlan
from prunekit.core.sparsity.schedule import Schedule
from prunekit.core.sparsity.targets import Target, measure_sparsity, prunable_targets
from prunekit.core.train.optim import parameter_groups

TOLERANCE = 0.005
PLAN_STEPS = 16


def _sparsity(model: nn.Module, targets: list[Target]) -> float:
    return measure_sparsity(model, targets)["prunable"]


def _train(
    model: nn.Module,
    targets: list[Target],
    pruner: Any,
    opt: torch.optim.Optimizer,
    steps: int,
    first_step: int,
    generator: torch.Generator,
    sparsity: float | None = None,
) -> None:
    regrown = False  # after a drop-and-grow, grown weights are active zeros: at least s, not exactly s
    for step in range(first_step, first_step + steps):
        x = torch.randn(8, 1, 32, 32, generator=generator)
        y = torch.randint(0, 10, (8,), generator=generator)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()  # type: ignore[no-untyped-call]  # torch leaves backward untyped
        pruner.before_step(step)
        opt.step()
        if sparsity is not None and pruner.is_update_step(step):
            pruner.update_masks(sparsity, step)
            regrown = True
        pruner.enforce()
        if sparsity is not None:
            got = _sparsity(model, targets)
            assert got >= sparsity - TOLERANCE, f"training step {step} lowered sparsity from {sparsity} to {got:.4f}"
            assert regrown or got <= sparsity + TOLERANCE, f"training step {step} changed sparsity from {sparsity} to {got:.4f}"


def _build(
    factory: Callable[..., Any], options: dict[str, Any], seed: int, target: float
) -> tuple[nn.Module, list[Target], Any, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    pruner = factory(targets, **options)
    opt = adamw(parameter_groups(model, 1e-4), lr=1e-3, weight_decay=1e-4, epochs=1, steps_per_epoch=1)
    pruner.bind(opt)
    pruner.start(TrainingPlan(PLAN_STEPS, PLAN_STEPS, Schedule.constant(target)))
    return model, targets, pruner, opt


def _check_names(kind: str, items: dict[str, Any], names: set[str], valid: Callable[[Any], bool]) -> None:
    assert isinstance(items, dict), f"{kind} is not a dict"
    for name, value in items.items():
        assert valid(value), f"{kind} entry {name!r} has an invalid value {value!r}"
        what, sep, owner = name.partition(":")
        assert sep and what and owner in names, f"{kind} entry {name!r} is not named '<what>:<target name>'"


def check_pruner(
    factory: Callable[..., Any],
    options: dict[str, Any] | None = None,
    sparsities: Sequence[float] = (0.5, 0.8),
    seed: int = 0,
    step_zero: bool = True,
    first_masks_after: int = 1,
) -> dict[float, float]:
    """Run the rules above; return the achieved sparsity after each update."""
    options = dict(options or {})
    model, targets, pruner, opt = _build(factory, options, seed, sparsities[-1])
    names = {t.name for t in targets}
    g = torch.Generator().manual_seed(seed)

    pruner.before_step(0)  # no gradients and no optimizer state yet: must not fail
    pruner.enforce()
    _train(model, targets, pruner, opt, 3, 1, g)
    achieved = {}
    step = 4
    for s in sparsities:
        pruner.update_masks(s, step)
        pruner.enforce()
        got = _sparsity(model, targets)
        assert abs(got - s) <= TOLERANCE, f"after update_masks({s}) the forward weights are {got:.4f} sparse"
        _train(model, targets, pruner, opt, 3, step + 1, g, sparsity=s)
        step += 4
        achieved[s] = got

    state = pruner.state_tensors()
    _check_names("state_tensors()", state, names, lambda v: isinstance(v, torch.Tensor))
    transient = pruner.transient_bytes()
    _check_names("transient_bytes()", transient, names, lambda v: isinstance(v, int) and v >= 0)

    saved = pruner.state_dict()
    _, _, fresh, fresh_opt = _build(factory, options, seed, sparsities[-1])
    fresh.load_state_dict(saved)
    restored = fresh.state_tensors()
    assert set(restored) == set(state), "state_dict round trip lost or added state tensors"
    for name in state:
        assert torch.equal(restored[name].cpu(), state[name].cpu()), f"state_dict round trip changed {name!r}"

    if not step_zero:
        return achieved
    first = sparsities[0]
    model, targets, pruner, opt = _build(factory, options, seed, first)
    pruner.update_masks(first, 0)  # the constant schedule: before any gradient or optimizer state
    pruner.enforce()
    g = torch.Generator().manual_seed(seed)
    _train(model, targets, pruner, opt, first_masks_after - 1, 1, g)
    _train(model, targets, pruner, opt, 1, first_masks_after, g, sparsity=first)
    return achieved
