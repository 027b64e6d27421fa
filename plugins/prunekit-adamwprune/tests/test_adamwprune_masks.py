"""Masks: equal to a concatenate + torch.kthvalue reference, deterministic, exact sparsity."""

from __future__ import annotations

import copy

import pytest
import torch

from prunekit.testing import measure_sparsity
from prunekit_adamwprune.pruner import StatePruner

VARIANTS = ["bitter7", "bitter0", "bitter3", "fisher"]


def reference_masks(pruner, sparsity):
    """The seed's way, made exact: concatenate every score, kthvalue, keep score > kth.

    Scores come from ``pruner.score`` (each variant's formula is tested in
    test_adamwprune_scores.py); pruned weights score -inf so masks only grow.
    """
    scores = []
    for i, (t, old) in enumerate(zip(pruner.targets, pruner.masks)):
        s = pruner.score(i, t).float()
        if old is not None:
            s = s.masked_fill(~old, float("-inf"))
        scores.append(s)
    flat = torch.cat([s.flatten() for s in scores])
    k = int(round(sparsity * flat.numel()))
    kth = flat.kthvalue(k).values
    return [s > kth for s in scores]


@pytest.mark.parametrize("variant", VARIANTS)
def test_global_masks_equal_concatenating_kthvalue_reference(trained, steps, variant):
    model, targets, opt = trained
    pruner = StatePruner(targets, variant=variant)
    pruner.bind(opt)
    for step, sparsity in ((10, 0.3), (20, 0.55), (30, 0.8)):
        expected = reference_masks(pruner, sparsity)
        pruner.update_masks(sparsity, step)
        for got, want in zip(pruner.masks, expected):
            assert got.dtype == torch.bool
            assert torch.equal(got, want)
        steps(model, opt, 2, seed=step)  # moments move between updates
        pruner.enforce()


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9, 0.97])
def test_achieved_sparsity_equals_target(trained, sparsity):
    model, targets, opt = trained
    pruner = StatePruner(targets)
    pruner.bind(opt)
    pruner.update_masks(sparsity, 1)
    total = sum(t.numel() for t in targets)
    measured = measure_sparsity(model, targets)
    assert measured["prunable_zeros"] == round(sparsity * total)  # random state: no ties
    assert sum(int((~m).sum()) for m in pruner.masks) == round(sparsity * total)


def test_same_state_same_masks(trained):
    model, targets, opt = trained
    twin_model = copy.deepcopy(model)
    from prunekit.testing import parameter_groups, prunable_targets

    twin_opt = torch.optim.AdamW(parameter_groups(twin_model, 1e-2), lr=1e-2)
    twin_opt.load_state_dict(opt.state_dict())
    twin_targets = prunable_targets(twin_model)
    a, b = StatePruner(targets), StatePruner(twin_targets)
    a.bind(opt)
    b.bind(twin_opt)
    torch.manual_seed(1)
    a.update_masks(0.6, 1)
    torch.manual_seed(12345)  # the global RNG must not matter
    b.update_masks(0.6, 1)
    for x, y in zip(a.masks, b.masks):
        assert torch.equal(x, y)


def test_masks_only_grow(trained):
    model, targets, opt = trained
    pruner = StatePruner(targets, variant="bitter0")
    pruner.bind(opt)
    pruner.update_masks(0.5, 1)
    first = [m.clone() for m in pruner.masks]
    with torch.no_grad():  # make every pruned weight look important now
        for t, m in zip(targets, pruner.masks):
            t.parameter[~m] = 100.0
            opt.state[t.parameter]["exp_avg"][~m] = 1.0
            opt.state[t.parameter]["exp_avg_sq"][~m] = 1e-6
    pruner.update_masks(0.6, 2)
    for old, new in zip(first, pruner.masks):
        assert not (new & ~old).any()  # nothing pruned comes back
        assert int((~new).sum()) >= int((~old).sum())


@pytest.mark.parametrize("variant", ["bitter7", "fisher"])
def test_layer_scope_gives_every_layer_the_sparsity(trained, variant):
    _, targets, opt = trained
    pruner = StatePruner(targets, variant=variant, scope="layer")
    pruner.bind(opt)
    expected = []
    for i, t in enumerate(targets):  # per-layer reference: kthvalue of that layer's scores alone
        s = pruner.score(i, t)
        expected.append(s > s.flatten().kthvalue(round(0.7 * t.numel())).values)
    pruner.update_masks(0.7, 1)
    for t, m, want in zip(targets, pruner.masks, expected):
        assert int((~m).sum()) == round(0.7 * t.numel())
        assert torch.equal(m, want)
