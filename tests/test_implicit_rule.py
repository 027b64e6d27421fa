"""Issue 18.3: mask_storage=implicit is identical to bool, or the run stops with one line saying why."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.builtin.pruners import magnitude
from prunekit.core.sparsity.masks import ImplicitMaskError
from prunekit.core.sparsity.targets import prunable_targets


def mlp(zero_head: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    if zero_head:  # as timm's MLP-Mixer, ResMLP, gMLP and Sequencer heads
        nn.init.zeros_(model[2].weight)
    return model


def step(model, opt, pruner, n: int, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed + n)
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(torch.randn(32, 8, generator=g)), torch.randint(0, 4, (32,), generator=g)).backward()
    pruner.before_step(n)
    opt.step()
    pruner.enforce()


def test_zero_initialised_head_under_step0_masks_is_refused_not_pruned_whole():
    kept = {}
    for storage in ("bool", "implicit"):
        model = mlp(zero_head=True)
        pruner = magnitude(prunable_targets(model), scope="layer", mask_storage=storage)
        if storage == "implicit":
            with pytest.raises(
                ImplicitMaskError, match=r"cannot mask 2\.weight: 64 of its weights are exactly 0\.0 before its first mask"
            ) as info:
                pruner.update_masks(0.7, 0)  # the constant schedule's masks before step 1
            assert "\n" not in str(info.value) and "use mask_storage=bool or bits" in str(info.value)
        else:
            pruner.update_masks(0.7, 0)
            kept[storage] = int(pruner.masks[1].sum())
    assert kept["bool"] == 64 - round(0.7 * 64)  # bool keeps 19 of the head's zeros live (implicit once kept 0)


def test_a_live_weight_landing_exactly_on_zero_stops_an_implicit_run():
    for storage in ("bool", "implicit"):
        model = mlp()
        pruner = magnitude(prunable_targets(model), mask_storage=storage)
        opt = torch.optim.SGD(model.parameters(), lr=1.0)  # plain SGD: w - 1.0 * w is exactly 0.0
        pruner.bind(opt)
        step(model, opt, pruner, 1)
        pruner.update_masks(0.5, 1)
        pruner.enforce()
        weight = model[0].weight
        live = int(torch.nonzero(pruner.masks[0].flatten())[0])
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(torch.randn(4, 8)), torch.randint(0, 4, (4,))).backward()
        pruner.before_step(2)
        weight.grad.view(-1)[live] = weight.detach().view(-1)[live]  # this step lands it on exactly 0.0
        opt.step()
        assert weight.detach().view(-1)[live] == 0.0
        if storage == "implicit":
            with pytest.raises(ImplicitMaskError, match="landed exactly on 0.0"):
                pruner.enforce()
        else:
            pruner.enforce()
            assert pruner.masks[0].view(-1)[live]  # bool keeps it live: it trains on
            step(model, opt, pruner, 3)
            assert weight.detach().view(-1)[live] != 0.0


class HeavyBall(torch.optim.Optimizer):
    """p -= lr * velocity, velocity = 0.9 velocity + g: per-weight state named outside MASKED_OPTIMIZER_STATE."""

    def __init__(self, params, lr: float = 0.05) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                v = self.state[p].setdefault("velocity", torch.zeros_like(p))
                v.mul_(0.9).add_(p.grad)
                p.sub_(v, alpha=group["lr"])


def test_an_optimizer_with_unzeroed_state_reviving_pruned_weights_is_detected():
    sparsity = {}
    for storage in ("bool", "implicit"):
        model = mlp()
        targets = prunable_targets(model)
        pruner = magnitude(targets, mask_storage=storage)
        opt = HeavyBall(model.parameters())
        pruner.bind(opt)
        for n in range(1, 4):
            step(model, opt, pruner, n)
        pruner.update_masks(0.7, 3)
        pruner.enforce()
        if storage == "implicit":
            with pytest.raises(ImplicitMaskError, match=r"pruned weights of .* became non-zero.*velocity"):
                step(model, opt, pruner, 4)  # once, sparsity silently fell to 0.0 here
        else:
            for n in range(4, 8):
                step(model, opt, pruner, n)
            zeros = sum(int((t.parameter == 0).sum()) for t in targets)
            sparsity[storage] = zeros / sum(t.numel() for t in targets)
    assert sparsity["bool"] == pytest.approx(0.7, abs=0.01)


def test_implicit_stays_identical_to_bool_with_the_builtin_adamw():
    """The ordinary case is untouched: same weights step by step, no refusal."""
    weights = {}
    for storage in ("bool", "implicit"):
        model = mlp()
        pruner = magnitude(prunable_targets(model), mask_storage=storage)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        pruner.bind(opt)
        for n in range(1, 13):
            step(model, opt, pruner, n)
            if n in (3, 6, 9):
                pruner.update_masks({3: 0.3, 6: 0.5, 9: 0.7}[n], n)
                pruner.enforce()
        weights[storage] = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(weights["bool"], weights["implicit"]))
