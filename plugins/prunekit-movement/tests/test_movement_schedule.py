"""Both pruners reach the scheduled sparsity at every update, driven by the core's Schedule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prunekit.testing import LeNet5, Schedule, measure_sparsity, prunable_targets
from prunekit_movement import movement, movement_w0

FACTORIES = {"movement": movement, "movement-w0": movement_w0}


def _expected_zeros(targets, sparsity: float, scope: str) -> int:
    if scope == "global":
        return round(sparsity * sum(t.numel() for t in targets))
    return sum(round(sparsity * t.numel()) for t in targets)


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_scheduled_sparsity_is_reached_at_every_update(name, scope):
    torch.manual_seed(0)
    model = LeNet5()
    targets = prunable_targets(model)
    pruner = FACTORIES[name](targets, scope=scope)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    pruner.bind(optimizer)
    schedule = Schedule("gmp", target=0.9, warmup=2, end=10, frequency=3)
    inputs, labels = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    checked = []
    for step in range(1, 13):
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), labels).backward()
        pruner.before_step(step)
        optimizer.step()
        if schedule.is_update_step(step):
            pruner.update_masks(schedule.sparsity_at(step), step)
        pruner.enforce()
        zeros = measure_sparsity(model, targets)["prunable_zeros"]
        if step <= schedule.warmup:
            assert zeros == 0
        elif schedule.is_update_step(step):
            assert zeros == _expected_zeros(targets, schedule.sparsity_at(step), scope)
            checked.append(step)
    assert checked == [5, 8, 10]
    assert zeros == _expected_zeros(targets, 0.9, scope)  # still exact two steps after the end
    assert measure_sparsity(model, targets)["prunable"] == pytest.approx(0.9, abs=1e-4)


def test_movement_w0_masks_only_grow_and_pruned_weights_are_zero():
    torch.manual_seed(1)
    model = LeNet5()
    targets = prunable_targets(model)
    pruner = movement_w0(targets)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    pruner.bind(optimizer)
    initial = [t.parameter.detach().clone() for t in targets]
    inputs, labels = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    previous = None
    for step, sparsity in enumerate([0.3, 0.5, 0.7], start=1):
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), labels).backward()
        pruner.before_step(step)
        optimizer.step()
        if step == 1:  # the score is W * (W - W0), W0 taken at bind
            w = targets[0].parameter.detach()
            assert torch.equal(pruner.score(0, targets[0]), w * (w - initial[0]))
        pruner.update_masks(sparsity, step)
        pruner.enforce()
        masks = [m.clone() for m in pruner.masks]
        if previous is not None:
            assert not any(bool((new & ~old).any()) for old, new in zip(previous, masks))  # pruned stay pruned
        for target, mask in zip(targets, masks):
            assert torch.count_nonzero(target.parameter.detach()[~mask]) == 0
        previous = masks
    assert all(torch.equal(w0, w) for w0, w in zip(pruner.initial, initial))
