"""A RigL step on a 2x4 layer computed by hand: which weights drop, which grow,
their new values and Adam moments; the cadence and the cosine drop fraction."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from prunekit.api import Schedule, Target, TrainingPlan
from prunekit.testing import prunable_targets
from prunekit_dst import rigl


def _layer(weights: list[float]) -> nn.Linear:
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weights).view(2, 4))
    return layer


def _pruner(layer, total_steps=10, **options):
    targets = prunable_targets(layer)
    pruner = rigl(targets, **({"scope": "layer", "seed": 0} | options))
    opt = torch.optim.Adam(layer.parameters(), lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    pruner.bind(opt)
    pruner.start(TrainingPlan(total_steps, total_steps, Schedule.constant(0.5)))
    return targets, pruner, opt


def test_hand_computed_drop_and_grow():
    # flat positions 0..7; active {0, 1, 3, 5}, inactive (zero) {2, 4, 6, 7}: sparsity 0.5
    layer = _layer([0.5, -0.05, 0.0, 0.3, 0.0, 0.2, 0.0, 0.0])
    targets, pruner, opt = _pruner(layer, delta_t=1, alpha=0.5, decay="constant", end_fraction=1.0)
    pruner.masks = [torch.tensor([1, 1, 0, 1, 0, 1, 0, 0], dtype=torch.bool).view(2, 4)]
    assert pruner.is_update_step(1)

    # loss = y0 - y1 with x = (1, 2, 3, 4): dL/dW = [[1, 2, 3, 4], [-1, -2, -3, -4]]
    opt.zero_grad()
    (layer(torch.tensor([[1.0, 2.0, 3.0, 4.0]])) * torch.tensor([1.0, -1.0])).sum().backward()
    pruner.before_step(1)  # keeps |dense gradient| = (1, 2, 3, 4, 1, 2, 3, 4), masks the gradient
    assert pruner.transient_bytes() == {"dense_grad:weight": 8 * 4}
    assert layer.weight.grad.flatten().tolist() == [1.0, 2.0, 0.0, 4.0, 0.0, -2.0, 0.0, 0.0]
    opt.step()  # Adam's first step moves each active weight by lr * g / (|g| + eps) = 0.01 * sign(g)
    w = layer.weight.detach().flatten()
    assert w.tolist() == pytest.approx([0.49, -0.06, 0.0, 0.29, 0.0, 0.21, 0.0, 0.0], abs=1e-6)

    pruner.update_masks(0.5, 1)
    pruner.enforce()
    # drop floor(4 * 0.5) = 2 active weights with the smallest |w|: positions 1 (0.06) and 5 (0.21)
    # grow 2 among the rest {1, 2, 4, 5, 6, 7} by |g| = {2, 3, 1, 2, 3, 4}: 7 (4), then the tie at 3 -> 2 (first)
    mask = pruner.masks[0].flatten()
    assert mask.tolist() == [True, False, True, True, False, False, False, True]
    w = layer.weight.detach().flatten()
    assert w.tolist() == pytest.approx([0.49, 0.0, 0.0, 0.29, 0.0, 0.0, 0.0, 0.0], abs=1e-6)  # grown start at 0
    state = opt.state[layer.weight]
    # kept weights keep their moments: m = 0.1 g, v = 0.001 g^2; dropped and grown ones are zero
    assert state["exp_avg"].flatten().tolist() == pytest.approx([0.1, 0, 0, 0.4, 0, 0, 0, 0], abs=1e-7)
    assert state["exp_avg_sq"].flatten().tolist() == pytest.approx([0.001, 0, 0, 0.016, 0, 0, 0, 0], abs=1e-9)
    assert pruner.topology_updates == 1
    assert all(g is None for g in pruner._grow_scores)  # the dense-gradient copy is freed


def test_a_just_dropped_weight_with_the_largest_gradient_comes_back_unchanged():
    layer = _layer([0.5, -0.05, 0.0, 0.3, 0.0, 0.2, 0.0, 0.0])
    targets, pruner, opt = _pruner(layer, delta_t=1, alpha=0.25, decay="constant", end_fraction=1.0)
    pruner.masks = [torch.tensor([1, 1, 0, 1, 0, 1, 0, 0], dtype=torch.bool).view(2, 4)]
    opt.zero_grad()
    (layer(torch.tensor([[1.0, 9.0, 3.0, 4.0]])) * torch.tensor([1.0, 0.0])).sum().backward()
    pruner.before_step(1)
    opt.step()
    before = layer.weight.detach().clone()
    m_before = opt.state[layer.weight]["exp_avg"].clone()
    pruner.update_masks(0.5, 1)
    # drop 1: position 1 (|w| 0.06); its |g| = 9 is the largest, so it is grown again: nothing changes
    assert pruner.masks[0].flatten().tolist() == [True, True, False, True, False, True, False, False]
    assert torch.equal(layer.weight.detach(), before)
    assert torch.equal(opt.state[layer.weight]["exp_avg"], m_before)


def test_cadence_and_cosine_drop_fraction():
    layer = _layer([0.0] * 8)
    targets, pruner, _ = _pruner(layer, total_steps=400)  # paper defaults: delta_t 100, alpha 0.3, end 0.75
    assert pruner.end_step() == 300
    assert [s for s in range(0, 401) if pruner.is_update_step(s)] == [0, 100, 200, 300]
    for step in (100, 200, 300):
        assert pruner.drop_fraction(step) == pytest.approx(0.3 / 2 * (1 + math.cos(math.pi * step / 300)))
    assert pruner.drop_fraction(300) == pytest.approx(0.0)
    # training FLOPs count these steps' dense gradients (prunekit.core.measure.flops)
    assert [s for s in range(0, 401) if pruner.dense_gradient_step(s)] == [100, 200, 300]


def test_no_topology_change_without_a_plan_or_off_cadence():
    layer = _layer([0.0] * 8)
    pruner = rigl([Target("weight", layer)], scope="layer", seed=0)
    assert not pruner.is_update_step(100)  # not started: no plan, no cadence
