"""Shared helpers: drive a pruner exactly as the core's runner does."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prunekit.api import Schedule, TrainingPlan
from prunekit.testing import builtin_optimizers, lenet5, parameter_groups, prunable_targets


def build(factory, options: dict, total_steps: int, sparsity: float, seed: int = 0):
    """LeNet-5 + AdamW + the pruner, bound and started on the constant schedule."""
    torch.manual_seed(seed)
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    pruner = factory(targets, **options)
    opt = builtin_optimizers.adamw(
        parameter_groups(model, 1e-4), lr=1e-3, weight_decay=1e-4, epochs=1, steps_per_epoch=total_steps
    )
    pruner.bind(opt)
    pruner.start(TrainingPlan(total_steps, total_steps, Schedule.constant(sparsity)))
    return model, targets, pruner, opt


def run_steps(model, pruner, opt, sparsity: float, steps, after_step=None, seed: int = 0) -> int:
    """The runner's order: step-0 update, then backward, before_step, step, scheduled update, enforce."""
    g = torch.Generator().manual_seed(seed)
    updates = 0
    if 0 in steps and pruner.is_update_step(0):
        pruner.update_masks(sparsity, 0)
        pruner.enforce()
        updates += 1
    for step in (s for s in steps if s > 0):
        x, y = torch.randn(16, 1, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        pruner.before_step(step)
        opt.step()
        if pruner.is_update_step(step):
            pruner.update_masks(sparsity, step)
            updates += 1
        pruner.enforce()
        if after_step is not None:
            after_step(step)
    return updates


@pytest.fixture(name="build")
def _build_fixture():
    return build


@pytest.fixture(name="run_steps")
def _run_steps_fixture():
    return run_steps
