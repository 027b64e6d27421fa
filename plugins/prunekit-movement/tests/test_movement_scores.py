"""Movement scores by hand, the straight-through gradient, and weights that come back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.testing import prunable_targets
from prunekit_movement import MovementPruner


def _linear(weights: list[float]) -> nn.Linear:
    layer = nn.Linear(len(weights), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weights]))
    return layer


def _step(layer, optimizer, pruner, x: list[float], step: int) -> None:
    """One training step in the core's order; loss = output, so dL/dW' = x."""
    optimizer.zero_grad()
    layer(torch.tensor([x])).sum().backward()
    pruner.before_step(step)
    optimizer.step()
    pruner.enforce()


def test_score_after_two_hand_computed_steps_fixed_lr():
    layer = _linear([1.0, -2.0])
    targets = prunable_targets(layer)
    pruner = MovementPruner(targets, lr_score=0.5)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    pruner.bind(optimizer)

    # step 1: g = x = [3, 1], W = [1, -2]: S = -0.5 * [3*1, 1*(-2)] = [-1.5, 1.0]
    _step(layer, optimizer, pruner, [3.0, 1.0], 1)
    assert pruner.scores[0].tolist() == [[-1.5, 1.0]]
    # SGD: W = [1, -2] - 0.5 * [3, 1] = [-0.5, -2.5]
    assert targets[0].parameter.tolist() == [[-0.5, -2.5]]

    # step 2: g = [-1, 2]: S = [-1.5, 1.0] - 0.5 * [(-1)(-0.5), 2(-2.5)] = [-1.75, 3.5]
    _step(layer, optimizer, pruner, [-1.0, 2.0], 2)
    assert pruner.scores[0].tolist() == [[-1.75, 3.5]]


@pytest.mark.parametrize("how", ["schedule", "load_state_dict"])
def test_default_score_lr_follows_the_optimizer_learning_rate(how):
    layer = _linear([1.0, -2.0])
    pruner = MovementPruner(prunable_targets(layer))
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    pruner.bind(optimizer)
    _step(layer, optimizer, pruner, [3.0, 1.0], 1)  # lr_S = 0.5: S = [-1.5, 1.0], W = [-0.5, -2.5]
    if how == "schedule":  # a schedule lowers the rate in place
        optimizer.param_groups[0]["lr"] = 0.25
    else:  # resuming replaces the optimizer's group dicts
        state = optimizer.state_dict()
        state["param_groups"][0]["lr"] = 0.25
        optimizer.load_state_dict(state)
    # S = [-1.5, 1.0] - 0.25 * [(-1)(-0.5), 2(-2.5)] = [-1.625, 2.25]
    _step(layer, optimizer, pruner, [-1.0, 2.0], 2)
    assert pruner.scores[0].tolist() == [[-1.625, 2.25]]


def test_pruned_weight_keeps_its_value_and_returns_when_its_score_rises():
    layer = _linear([1.0, 2.0, 3.0, 4.0])
    target = prunable_targets(layer)[0]
    pruner = MovementPruner([target], lr_score=1.0)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    pruner.bind(optimizer)

    # S = -x * W = -[-1, -1, 1, 1] * [1, 2, 3, 4] = [1, 2, -3, -4]; W <- W - 0.5 x = [1.5, 2.5, 2.5, 3.5]
    _step(layer, optimizer, pruner, [-1.0, -1.0, 1.0, 1.0], 1)
    assert pruner.scores[0].tolist() == [[1.0, 2.0, -3.0, -4.0]]
    pruner.update_masks(0.5, 1)
    assert pruner.masks[0].tolist() == [[True, True, False, False]]
    assert target.weight.tolist() == [[1.5, 2.5, 0.0, 0.0]]  # the forward pass sees W * mask
    assert target.parameter.tolist() == [[1.5, 2.5, 2.5, 3.5]]  # the dense W is retained
    assert torch.equal(layer(torch.ones(1, 4)), torch.tensor([[4.0]]))

    # a gradient only at the pruned weight 2: its score still moves (straight-through),
    # S[2] = -3 - 1 * (-4 * 2.5) = 7; its gradient is masked, so W does not move
    _step(layer, optimizer, pruner, [0.0, 0.0, -4.0, 0.0], 2)
    assert pruner.scores[0].tolist() == [[1.0, 2.0, 7.0, -4.0]]
    assert target.parameter.grad.tolist() == [[0.0, 0.0, 0.0, 0.0]]
    assert target.parameter.tolist() == [[1.5, 2.5, 2.5, 3.5]]

    pruner.update_masks(0.5, 2)
    assert pruner.masks[0].tolist() == [[False, True, True, False]]
    assert target.weight.tolist() == [[0.0, 2.5, 2.5, 0.0]]  # weight 2 is back with its value


def test_pruned_weights_do_not_move_under_adam_and_their_moments_are_zeroed():
    torch.manual_seed(0)
    layer = nn.Linear(8, 3, bias=False)
    target = prunable_targets(layer)[0]
    pruner = MovementPruner([target], lr_score=1.0)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.0)
    pruner.bind(optimizer)
    for step in range(1, 4):
        optimizer.zero_grad()
        layer(torch.randn(5, 8)).pow(2).sum().backward()
        pruner.before_step(step)
        optimizer.step()
    pruner.update_masks(0.5, 3)
    mask = pruner.masks[0]
    assert int(mask.sum()) == 12
    state = optimizer.state[target.parameter]
    assert state["exp_avg"][~mask].abs().sum() == 0
    assert state["exp_avg_sq"][~mask].abs().sum() == 0
    frozen = target.parameter.detach()[~mask].clone()
    assert frozen.abs().min() > 0  # retained, not zeroed
    for step in range(4, 7):
        optimizer.zero_grad()
        layer(torch.randn(5, 8)).pow(2).sum().backward()
        pruner.before_step(step)
        optimizer.step()
    assert torch.equal(target.parameter.detach()[~mask], frozen)
    assert torch.count_nonzero(target.weight[~mask]) == 0


def test_ties_at_the_threshold_are_broken_so_the_count_is_exact():
    layer = _linear([1.0, 2.0, 3.0, 4.0])
    pruner = MovementPruner(prunable_targets(layer), lr_score=1.0)
    pruner.update_masks(0.5, 1)  # every score is still 0
    assert int(pruner.masks[0].sum()) == 2


def test_a_step_with_non_finite_gradients_leaves_the_scores_unchanged_but_masks_them():
    layer = _linear([1.0, 2.0, 3.0, 4.0])
    target = prunable_targets(layer)[0]
    pruner = MovementPruner([target], lr_score=1.0)
    pruner.update_masks(0.5, 0)
    before = pruner.scores[0].clone()
    target.parameter.grad = torch.tensor([[1.0, float("inf"), 2.0, 3.0]])
    pruner.before_step(1)  # what a gradient scaler's skipped step looks like
    assert torch.equal(pruner.scores[0], before)
    assert torch.equal(target.parameter.grad == 0, ~pruner.masks[0])
    target.parameter.grad = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    pruner.before_step(2)
    assert pruner.scores[0].tolist() == [[-1.0, -2.0, -3.0, -4.0]]
