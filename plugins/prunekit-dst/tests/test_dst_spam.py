"""Issue 18: adamwspam's spike clip must not hold the weights RigL and SET grow at zero there."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prunekit.api import Schedule, TrainingPlan
from prunekit.testing import builtin_optimizers, lenet5, parameter_groups, prunable_targets
from prunekit_dst import RigLPruner, SETPruner

UPDATE = 25  # past adamwspam's 20 steps without clipping: the clip is on when weights are grown


def grown_after_one_step(factory) -> tuple[int, int, int]:
    """(grown weights that moved on the step after the topology update, of them with a gradient, grown)."""
    torch.manual_seed(0)
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    pruner = factory(targets, delta_t=UPDATE, alpha=0.3, end_fraction=1.0, decay="constant", seed=0)
    opt = builtin_optimizers.adamwspam(
        parameter_groups(model, 1e-4), lr=1e-3, weight_decay=1e-4, epochs=1, steps_per_epoch=40, clip_theta=5000.0
    )  # SPAM's theta, given: the default since API 1.5
    pruner.bind(opt.optimizer)
    pruner.start(TrainingPlan(40, 40, Schedule.constant(0.8)))
    pruner.update_masks(0.8, 0)
    pruner.enforce()
    g = torch.Generator().manual_seed(0)
    grown: list[torch.Tensor] = []
    for step in range(1, UPDATE + 2):
        x, y = torch.randn(16, 1, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)
        opt.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        pruner.before_step(step)
        if step == UPDATE + 1:
            with_gradient = sum(int((t.parameter.grad[n] != 0).sum()) for t, n in zip(targets, grown))
        opt.process_gradients(step)
        opt.step()
        if pruner.is_update_step(step):
            old = [m.clone() for m in pruner.masks]
            pruner.update_masks(0.8, step)
            grown = [m & ~o for m, o in zip(pruner.masks, old)]
            assert all(not t.parameter.detach()[n].any() for t, n in zip(targets, grown))  # grown at zero
        pruner.enforce()
        opt.after_step(step)
    assert pruner.topology_updates == 1
    moved = sum(int(t.parameter.detach()[n].ne(0).sum()) for t, n in zip(targets, grown))
    return moved, with_gradient, sum(int(n.sum()) for n in grown)


@pytest.mark.parametrize("factory", [RigLPruner, SETPruner], ids=["rigl", "set"])
def test_weights_grown_under_adamwspam_move_on_the_next_step(factory):
    moved, with_gradient, total = grown_after_one_step(factory)
    assert with_gradient > 0.3 * total > 100
    # before the fix 0 moved: their exp_avg_sq is 0, so the clip bound sqrt(theta * v) was 0
    assert moved == with_gradient, (moved, with_gradient, total)
