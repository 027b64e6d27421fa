"""Issue 18.4: SET as Mocanu et al. (variant=mocanu): signed drop, growth at random values."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prunekit.api import Schedule, TrainingPlan
from prunekit.testing import builtin_optimizers, lenet5, parameter_groups, prunable_targets
from prunekit_dst import SETPruner


def one_update(variant: str):
    torch.manual_seed(0)
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    pruner = SETPruner(targets, delta_t=3, alpha=0.3, decay="constant", end_fraction=1.0, seed=0, variant=variant)
    opt = builtin_optimizers.adamw(parameter_groups(model, 0.0), lr=1e-2, weight_decay=0.0, epochs=1, steps_per_epoch=4)
    pruner.bind(opt)
    pruner.start(TrainingPlan(4, 4, Schedule.constant(0.8)))
    pruner.update_masks(0.8, 0)
    pruner.enforce()
    g = torch.Generator().manual_seed(0)
    for step in range(1, 4):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(torch.randn(16, 1, 32, 32, generator=g)), torch.randint(0, 10, (16,), generator=g)).backward()
        pruner.before_step(step)
        opt.step()
        if step == 3:
            before = [t.parameter.detach().clone() for t in targets]
            old = [m.clone() for m in pruner.masks]
            pruner.update_masks(0.8, step)
        pruner.enforce()
    return targets, pruner, before, old


def test_mocanu_drops_positive_and_negative_weights_separately_and_grows_random_values():
    targets, pruner, before, old = one_update("mocanu")
    for t, w, o, m in zip(targets, before, old, pruner.masks):
        positive, negative = o & (w > 0), o & (w < 0)
        dropped = o & ~m
        assert int((dropped & positive).sum()) <= int(0.3 * int(positive.sum()))  # regrown ones may land back
        assert int((dropped & negative).sum()) <= int(0.3 * int(negative.sum()))
        new = m & (t.parameter.detach() != w)  # grown at a fresh value
        assert int(new.sum()) > 0 and bool((t.parameter.detach()[new] != 0).all())
        assert int(m.sum()) == int(o.sum())  # the layer's count of active weights is constant
    values = torch.cat([t.parameter.detach()[m & ~o] for t, o, m in zip(targets, old, pruner.masks)])
    assert 0.07 < float(values.std()) < 0.13  # N(0, 0.1^2), as Mocanu et al.'s randn() / 10


def test_default_set_grows_at_zero_and_drops_by_magnitude():
    targets, pruner, before, old = one_update("magnitude")
    grown = torch.cat([t.parameter.detach()[m & ~o] for t, o, m in zip(targets, old, pruner.masks)])
    assert grown.numel() > 0 and not grown.any()
