"""Every byte the pruners keep is on the core's ledger: exactly 5 B per prunable weight."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prunekit.testing import LeNet5, memory_ledger, prunable_targets
from prunekit_movement import movement, movement_w0


def _trained_ledger(factory):
    torch.manual_seed(0)
    model = LeNet5()
    targets = prunable_targets(model)
    pruner = factory(targets)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    pruner.bind(optimizer)
    for step in (1, 2):
        optimizer.zero_grad()
        F.cross_entropy(model(torch.randn(4, 1, 32, 32)), torch.randint(0, 10, (4,))).backward()
        pruner.before_step(step)
        optimizer.step()
        pruner.update_masks(0.5 * step, step)
        pruner.enforce()
    return model, targets, pruner, memory_ledger(model, optimizer, pruner.state_tensors(), targets)


@pytest.mark.parametrize(
    "factory, kinds",
    [(movement, {"score": 4, "mask": 1}), (movement_w0, {"w0": 4, "mask": 1})],
    ids=["movement", "movement-w0"],
)
def test_pruner_bytes_per_prunable_weight(factory, kinds):
    model, targets, pruner, ledger = _trained_ledger(factory)
    prunable = sum(t.numel() for t in targets)
    assert prunable == ledger["prunable_weights"] == 61_470  # LeNet-5's conv + linear weights
    state = pruner.state_tensors()
    assert sorted(state) == sorted(f"{k}:{t.name}" for k in kinds for t in targets)
    for name, tensor in state.items():
        assert tensor.element_size() == kinds[name.split(":")[0]]
        assert tensor.numel() == dict((t.name, t.numel()) for t in targets)[name.split(":", 1)[1]]
    assert ledger["pruner_state"] == 5 * prunable
    assert ledger["pruner_state_bytes_per_prunable_weight"] == 5.0
    for target in targets:
        assert ledger["per_prunable_weight"][target.name]["pruner_state"] == 5 * target.numel()


def test_movement_keeps_no_hidden_copy_of_the_weights():
    """The mask gate adds no parameter or buffer: parameters and buffers match a dense LeNet-5."""
    model, _, _, ledger = _trained_ledger(movement)
    dense = LeNet5()
    dense_ledger = memory_ledger(dense, None, {}, prunable_targets(dense))
    assert ledger["parameters"] == dense_ledger["parameters"] == 4 * 61_750
    assert ledger["buffers"] == dense_ledger["buffers"]
    assert len(list(model.parameters())) == len(list(dense.parameters()))
