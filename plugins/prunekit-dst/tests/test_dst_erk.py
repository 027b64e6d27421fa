"""The per-layer sparsity every pruner reaches with ERK: LeNet-5 against the densities
computed by hand in the core's tests/test_distribution.py, ResNet-18 (timm, random init)
against an independent water-filling solver."""

from __future__ import annotations

import math

import pytest
import torch

from prunekit.api import erk_densities, prune_counts
from prunekit.testing import builtin_optimizers, lenet5, parameter_groups, prunable_targets
from prunekit_dst import random, rigl, set_, snip

LENET = [(6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84)]  # conv1, conv2, fc1, fc2, fc3
N = [150, 2400, 48000, 10080, 840]


def _water_filling(shapes, sparsity):
    """Independent solver: densities min(1, eps * raw) with the model keeping 1 - sparsity, by bisection."""
    numels = [math.prod(s) for s in shapes]
    raw = [sum(s) / n for s, n in zip(shapes, numels)]
    kept = (1 - sparsity) * sum(numels)
    lo, hi = 0.0, 1.0 / min(raw)
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(min(1.0, mid * r) * n for r, n in zip(raw, numels)) < kept:
            lo = mid
        else:
            hi = mid
    return [min(1.0, hi * r) for r in raw]


@pytest.mark.parametrize("sparsity", [0.7, 0.9])
def test_lenet5_achieved_per_layer_sparsity_is_erk_for_every_pruner(sparsity, build, run_steps):
    want = [n - round(d * n) for d, n in zip(erk_densities(LENET, sparsity), N)]
    for factory, options in [(random, {}), (rigl, {}), (set_, {}), (snip, {}), (snip, {"batches": 2})]:
        model, targets, pruner, opt = build(factory, {**options, "scope": "erk"}, 10, sparsity)
        run_steps(model, pruner, opt, sparsity, range(0, 3))
        zeros = [int((t.weight == 0).sum()) for t in targets]
        assert zeros == want, factory.__name__


def test_core_mask_pruners_offer_erk():
    from prunekit.api import MaskPruner

    class Magnitude(MaskPruner):
        def score(self, index, target):
            return target.parameter.detach().abs()

    torch.manual_seed(0)
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    pruner = Magnitude(targets, scope="erk")
    pruner.bind(builtin_optimizers.adamw(parameter_groups(model, 0.0), lr=1e-3, weight_decay=0.0, epochs=1, steps_per_epoch=1))
    pruner.update_masks(0.9, 1)
    pruner.enforce()
    assert [int((t.weight == 0).sum()) for t in targets] == prune_counts(LENET, 0.9, "erk")


@pytest.mark.parametrize("sparsity", [0.8, 0.9])
def test_resnet18_achieved_per_layer_sparsity_matches_an_independent_erk_solver(sparsity):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)  # random init, nothing downloaded
    targets = prunable_targets(model)
    shapes = [tuple(t.parameter.shape) for t in targets]
    assert len(targets) == 21 and sum(math.prod(s) for s in shapes) == 11_172_032
    want = _water_filling(shapes, sparsity)
    assert erk_densities(shapes, sparsity) == pytest.approx(want, rel=1e-9)
    initial = [t.parameter.detach().clone() for t in targets]
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    for pruner in (random(targets, scope="erk", seed=0), snip(targets, scope="erk")):
        with torch.no_grad():
            for t, w in zip(targets, initial):
                t.parameter.copy_(w)
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()  # SNIP scores |w * g| of this batch
        pruner.update_masks(sparsity, 1)
        pruner.enforce()
        for t, d in zip(targets, want):
            n = t.parameter.numel()
            assert int((t.weight == 0).sum()) == n - round(d * n), (type(pruner).__name__, t.name)
        total = sum(int((t.weight == 0).sum()) for t in targets)
        assert abs(total - sparsity * 11_172_032) <= len(targets) / 2
