"""Constant sparsity: exactly the target number of pruned weights (all exactly zero)
after every step and every topology update, and the four pruners through the core's
conformance kit.

The forward pass can hold more zeros than pruned weights: RigL and SET grow weights
at exactly zero, and they stay zero until an optimizer step moves them (the end-to-end
test checks that a run's final, measured sparsity is the target)."""

from __future__ import annotations

import pytest
import torch

from prunekit.api import prune_counts
from prunekit.testing.pruner_conformance import check_pruner
from prunekit_dst import random, rigl, set_, snip

CASES = [
    (rigl, {"scope": "layer"}),
    (rigl, {"scope": "erk"}),
    (set_, {"scope": "layer"}),
    (set_, {"scope": "erk"}),
    (random, {"scope": "layer"}),
    (random, {"scope": "erk"}),
    (random, {"scope": "global"}),
    (snip, {"scope": "global"}),
    (snip, {"scope": "layer"}),
    (snip, {"scope": "erk"}),
    (snip, {"scope": "erk", "batches": 3}),
]
IDS = [f"{f.__name__.rstrip('_')}-{o['scope']}" + (f"-{o['batches']}" if "batches" in o else "") for f, o in CASES]


@pytest.mark.parametrize("factory, options", CASES, ids=IDS)
def test_exactly_at_target_after_every_step(factory, options, build, run_steps):
    sparsity, total = 0.9, 24
    dynamic = factory in (rigl, set_)
    extra = {"delta_t": 4, "end_fraction": 1.0} if dynamic else {}
    model, targets, pruner, opt = build(factory, options | extra, total, sparsity)
    shapes = [tuple(t.parameter.shape) for t in targets]
    n = sum(t.numel() for t in targets)
    per_layer = prune_counts(shapes, sparsity, options["scope"]) if options["scope"] != "global" else None
    seen = []
    chosen_at = options.get("batches", 1)  # SNIP chooses its masks in before_step(batches)

    def check(step):
        if step < chosen_at:
            assert pruner.masks == [None] * len(targets), f"step {step}: SNIP chose before its last batch"
            return
        pruned = [int((~m).sum()) for m in pruner.masks]
        if per_layer is not None:
            assert pruned == per_layer, f"step {step}"
        else:
            assert sum(pruned) == round(sparsity * n), f"step {step}"
        for t, m in zip(targets, pruner.masks):  # every pruned weight is exactly zero in the forward pass
            assert not t.weight[~m].any(), f"step {step}: {t.name}"
        seen.append([m.clone() for m in pruner.masks])

    updates = run_steps(model, pruner, opt, sparsity, range(0, total + 1), after_step=check)
    assert len(seen) == total - chosen_at + 1
    if dynamic:
        assert updates == 1 + total // 4  # step 0, then every delta_t steps
        assert pruner.topology_updates == total // 4
        assert any(not torch.equal(a, b) for a, b in zip(seen[0], seen[-1]))  # the topology moved
    else:
        assert updates == 1
        assert all(torch.equal(a, b) for a, b in zip(seen[0], seen[-1]))  # fixed after the first step


@pytest.mark.parametrize("factory, options", CASES, ids=IDS)
def test_conformance_kit(factory, options):
    extra = {"delta_t": 2} if factory in (rigl, set_) else {}
    achieved = check_pruner(factory, options | extra, first_masks_after=options.get("batches", 1))
    assert set(achieved) == {0.5, 0.8}
