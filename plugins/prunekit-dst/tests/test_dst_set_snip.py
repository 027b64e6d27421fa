"""A SET step with a fixed seed, and a SNIP selection on a known batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.api import Schedule, TrainingPlan
from prunekit.testing import prunable_targets
from prunekit_dst import set_, snip


def _layer(weights: list[float]) -> nn.Linear:
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weights).view(2, 4))
    return layer


def _set_step(seed: int) -> tuple[list[bool], nn.Linear, torch.optim.Optimizer]:
    layer = _layer([0.5, -0.05, 0.0, 0.3, 0.0, 0.2, 0.0, 0.0])
    pruner = set_(prunable_targets(layer), scope="layer", seed=seed, delta_t=1, alpha=0.5, decay="constant", end_fraction=1.0)
    opt = torch.optim.Adam(layer.parameters(), lr=0.01)
    pruner.bind(opt)
    pruner.start(TrainingPlan(10, 10, Schedule.constant(0.5)))
    pruner.masks = [torch.tensor([1, 1, 0, 1, 0, 1, 0, 0], dtype=torch.bool).view(2, 4)]
    opt.zero_grad()
    (layer(torch.tensor([[1.0, 2.0, 3.0, 4.0]])) * torch.tensor([1.0, -1.0])).sum().backward()
    pruner.before_step(1)
    assert pruner.transient_bytes() == {}  # SET needs no gradient copy
    opt.step()
    pruner.update_masks(0.5, 1)
    pruner.enforce()
    return pruner.masks[0].flatten().tolist(), layer, opt


def test_set_step_with_a_fixed_seed():
    mask, layer, opt = _set_step(seed=7)
    # the same drop as RigL (positions 1 and 5, smallest |w| after the step); growth at random among
    # {1, 2, 4, 5, 6, 7}: the stateless stream (seed 7, "grow", step 1, layer 0) scores them
    # 0.157, 0.596, 0.424, 0.739, 0.889, 0.494, so 6 (new: starts at 0) and 5 (just dropped: back unchanged)
    assert mask == [True, False, False, True, False, True, True, False]
    w = layer.weight.detach().flatten()
    assert w.tolist() == pytest.approx([0.49, 0.0, 0.0, 0.29, 0.0, 0.21, 0.0, 0.0], abs=1e-6)
    state = opt.state[layer.weight]
    assert state["exp_avg"].flatten().tolist() == pytest.approx([0.1, 0, 0, 0.4, 0, -0.2, 0, 0], abs=1e-7)
    assert state["exp_avg_sq"].flatten()[[1, 2, 4, 6, 7]].abs().sum() == 0
    assert _set_step(seed=7)[0] == mask  # reproducible
    others = {tuple(_set_step(seed=s)[0]) for s in range(8)}
    assert len(others) > 1  # and the seed matters
    assert all(sum(m) == 4 for m in others)


def test_snip_selects_from_w_times_g_on_the_first_batch_then_keeps_the_masks():
    layer = _layer([0.5, -1.0, 0.25, 2.0, -0.5, 0.1, 3.0, -0.2])
    pruner = snip(prunable_targets(layer))  # global, the paper's choice
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    pruner.bind(opt)
    pruner.start(TrainingPlan(5, 5, Schedule.constant(0.5)))
    assert pruner.is_update_step(0) and not pruner.is_update_step(1)
    pruner.update_masks(0.5, 0)  # before any gradient: chosen from the first batch
    assert pruner.masks == [None] and pruner.pending == 0.5

    # batch x = (1, -2, 0.5, 1), loss = y0 + 2 y1: g = [[1, -2, 0.5, 1], [2, -4, 1, 2]]
    # |w * g| = [0.5, 2, 0.125, 2, 1, 0.4, 3, 0.4]: keep the 4 largest -> positions 1, 3, 4, 6
    opt.zero_grad()
    (layer(torch.tensor([[1.0, -2.0, 0.5, 1.0]])) * torch.tensor([1.0, 2.0])).sum().backward()
    pruner.before_step(1)
    assert pruner.masks[0].flatten().tolist() == [False, True, False, True, True, False, True, False]
    assert layer.weight.grad.flatten()[[0, 2, 5, 7]].tolist() == [0.0, 0.0, 0.0, 0.0]
    opt.step()
    pruner.enforce()
    chosen = pruner.masks[0].clone()
    for step in (2, 3):  # further batches never change the masks
        opt.zero_grad()
        layer(torch.randn(3, 4)).sum().backward()
        pruner.before_step(step)
        opt.step()
        assert not pruner.is_update_step(step)
        pruner.enforce()
    assert torch.equal(pruner.masks[0], chosen)
    assert (layer.weight.detach().flatten()[[0, 2, 5, 7]] == 0).all()


def test_snip_state_dict_keeps_a_pending_selection():
    layer = _layer([1.0] * 8)
    pruner = snip(prunable_targets(layer))
    pruner.update_masks(0.75, 0)
    fresh = snip(prunable_targets(_layer([1.0] * 8)))
    fresh.load_state_dict(pruner.state_dict())
    assert fresh.pending == pytest.approx(0.75)


def test_snip_over_two_batches_sums_w_times_g_with_sign_then_takes_the_magnitude():
    layer = _layer([0.5, -1.0, 0.25, 2.0, -0.5, 0.1, 3.0, -0.2])
    targets = prunable_targets(layer)
    name = targets[0].name
    pruner = snip(targets, batches=2)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    pruner.bind(opt)
    pruner.start(TrainingPlan(5, 5, Schedule.constant(0.5)))
    pruner.update_masks(0.5, 0)

    # batch 1: x = (1, -2, 0.5, 1), loss = y0 + 2 y1: g1 = [[1, -2, 0.5, 1], [2, -4, 1, 2]]
    # w0 * g1 = [0.5, 2, 0.125, 2, -1, -0.4, 3, -0.4]; the dense network takes the step: w1 = w0 - 0.1 g1
    opt.zero_grad()
    (layer(torch.tensor([[1.0, -2.0, 0.5, 1.0]])) * torch.tensor([1.0, 2.0])).sum().backward()
    pruner.before_step(1)
    assert pruner.masks == [None]  # not chosen yet: the gradient is untouched
    assert layer.weight.grad.flatten().tolist() == [1.0, -2.0, 0.5, 1.0, 2.0, -4.0, 1.0, 2.0]
    assert set(pruner.state_tensors()) == {f"sensitivity:{name}"}  # the running sum is on the ledger while held
    fresh = snip(prunable_targets(_layer([0.0] * 8)), batches=2)
    fresh.load_state_dict(pruner.state_dict())  # a checkpoint here keeps the sum and what is pending
    assert fresh.pending == 0.5 and fresh.scored == 1
    assert torch.equal(fresh.sums[0], pruner.sums[0])
    opt.step()
    pruner.enforce()
    assert layer.weight.detach().flatten().tolist() == pytest.approx([0.4, -0.8, 0.2, 1.9, -0.7, 0.5, 2.9, -0.4])

    # batch 2: x = (2, 1, -1, 0), loss = y0 - y1: g2 = [[2, 1, -1, 0], [-2, -1, 1, 0]]
    # w1 * g2 = [0.8, -0.8, -0.2, 0, 1.4, -0.5, 2.9, 0]
    # |w0 g1 + w1 g2| = [1.3, 1.2, 0.075, 2, 0.4, 0.9, 5.9, 0.4]: keep positions 6, 3, 0, 1
    # (summing |w g| per batch instead would keep 6, 1, 4, 3; the first batch alone 6, 1, 3, 4)
    opt.zero_grad()
    (layer(torch.tensor([[2.0, 1.0, -1.0, 0.0]])) * torch.tensor([1.0, -1.0])).sum().backward()
    pruner.before_step(2)
    assert pruner.masks[0].flatten().tolist() == [True, True, False, True, False, False, True, False]
    assert layer.weight.grad.flatten()[[2, 4, 5, 7]].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert pruner.pending is None and pruner.sums == [None]
    assert set(pruner.state_tensors()) == {f"mask:{name}"}  # the sum is freed at the selection
    assert pruner.transient_bytes() == {f"sensitivity:{name}": 8 * 4}  # its peak: fp32, 4 B per weight
    opt.step()
    pruner.enforce()
    assert (layer.weight.detach().flatten()[[2, 4, 5, 7]] == 0).all()


def test_snip_skips_a_batch_with_a_non_finite_gradient():
    layer = _layer([0.5, -1.0, 0.25, 2.0, -0.5, 0.1, 3.0, -0.2])
    pruner = snip(prunable_targets(layer))
    pruner.update_masks(0.5, 0)
    layer.weight.grad = torch.full((2, 4), float("inf"))  # an fp16 overflow: the GradScaler skips this step
    pruner.before_step(1)
    assert pruner.masks == [None] and pruner.pending == 0.5
    layer.weight.grad = torch.tensor([[1.0, -2.0, 0.5, 1.0], [2.0, -4.0, 1.0, 2.0]])
    pruner.before_step(2)  # the first finite batch is scored: as in the single-batch test above
    assert pruner.masks[0].flatten().tolist() == [False, True, False, True, True, False, True, False]
