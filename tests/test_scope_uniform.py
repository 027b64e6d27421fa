"""Issue 18.4: RigL's "uniform" convention, every layer at the target but the first, kept dense."""

from __future__ import annotations

import torch

from prunekit.builtin.models import lenet5
from prunekit.builtin.pruners import magnitude
from prunekit.core.sparsity.distribution import layer_sparsities, prune_counts
from prunekit.core.sparsity.targets import prunable_targets


def test_uniform_keeps_the_first_layer_dense():
    shapes = [(6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84)]
    assert layer_sparsities(shapes, 0.9, "uniform") == [0.0, 0.9, 0.9, 0.9, 0.9]
    assert prune_counts(shapes, 0.9, "uniform")[0] == 0
    assert prune_counts(shapes, 0.9, "layer")[0] == 135  # scope=layer: 15 of conv1's 150 weights left


def test_magnitude_with_scope_uniform_on_lenet5():
    torch.manual_seed(0)
    targets = prunable_targets(lenet5(10, 1, 32))
    pruner = magnitude(targets, scope="uniform")
    pruner.update_masks(0.9, 0)
    pruner.enforce()
    kept = [t.numel() if m is None else int(m.sum()) for t, m in zip(targets, pruner.masks)]
    assert kept[0] == 150 and bool((targets[0].parameter != 0).all())  # conv1 dense
    assert kept[1:] == [t.numel() - round(0.9 * t.numel()) for t in targets[1:]]
    zeros = sum(int((t.parameter == 0).sum()) for t in targets)
    assert zeros / sum(t.numel() for t in targets) == round(0.9 * 61_320) / 61_470  # 89.78%, a little below 90%
