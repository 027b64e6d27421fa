"""Issue 18: weights returning under movement pruning must move under adamwspam's spike clip."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prunekit.testing import LeNet5, Schedule, builtin_optimizers, parameter_groups, prunable_targets
from prunekit_movement import movement


def test_returning_weights_move_under_adamwspam():
    torch.manual_seed(0)
    model = LeNet5()
    targets = prunable_targets(model)
    pruner = movement(targets, scope="global")
    opt = builtin_optimizers.adamwspam(
        parameter_groups(model, 0.0), lr=1e-2, weight_decay=0.0, epochs=1, steps_per_epoch=60, clip_theta=5000.0
    )  # SPAM's theta, given: the default since API 1.5
    pruner.bind(opt)
    schedule = Schedule("gmp", target=0.7, warmup=2, end=50, frequency=3)
    g = torch.Generator().manual_seed(0)
    returned = moved = with_gradient = 0
    pending: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    for step in range(1, 51):
        x, y = torch.randn(16, 1, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)
        opt.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        pruner.before_step(step)
        if pending is not None:
            for back, t in zip(pending, targets):
                with_gradient += int((t.parameter.grad[back[0]] != 0).sum())
        opt.process_gradients(step)
        opt.step()
        if pending is not None:  # the step after an update: did the weights that came back move?
            for (back, value), t in zip(pending, targets):
                moved += int(t.parameter.detach()[back].ne(value).sum())
            pending = None
        if schedule.is_update_step(step):
            old = [None if m is None else m.clone() for m in pruner.masks]
            pruner.update_masks(schedule.sparsity_at(step), step)
            if step > 20 and all(o is not None for o in old):  # past the 20 steps without clipping
                backs = [m & ~o for m, o in zip(pruner.masks, old)]
                returned += sum(int(b.sum()) for b in backs)
                pending = [(b, t.parameter.detach()[b].clone()) for b, t in zip(backs, targets)]
        pruner.enforce()
        opt.after_step(step)
    assert with_gradient > 0.3 * returned > 50
    # before the fix none moved: their moments were zeroed when pruned, so the clip bound was 0
    assert moved == with_gradient, (moved, with_gradient, returned)
