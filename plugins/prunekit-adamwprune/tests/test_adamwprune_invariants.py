"""Pruned positions stay exactly zero through many steps; the pruner keeps 1 byte per weight."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.api import TrainingOptimizer
from prunekit.testing import LeNet5, memory_ledger, parameter_groups, prunable_targets
from prunekit.testing import builtin_optimizers as builtin
from prunekit_adamwprune.optimizer import adamwprune
from prunekit_adamwprune.pruner import StatePruner

FACTORIES = {
    "adam": (builtin.adam, {}),
    "adamw": (builtin.adamw, {}),
    "adamwadv": (builtin.adamwadv, {}),
    # the original AdamWPrune settings with spike handling and periodic moment resets active
    "adamwspam": (builtin.adamwspam, {"preset": "adamwprune", "reset_interval": 17, "reset_warmup": 5}),
    # SPAM's defaults (the per-element clip from step 20), then with resets inside the run
    "adamwspam-paper": (builtin.adamwspam, {}),
    "adamwspam-clip": (builtin.adamwspam, {"clip_theta": 50.0, "reset_interval": 30, "clip_warmup": 5}),
    "adamwprune": (adamwprune, {}),
}
STEPS = 80
UPDATES = {10: 0.3, 20: 0.5, 30: 0.65, 40: 0.75, 50: 0.85}


def build(name: str, model: nn.Module) -> TrainingOptimizer:
    factory, options = FACTORIES[name]
    made = factory(parameter_groups(model, 0.1), lr=1e-2, weight_decay=0.1, epochs=4, steps_per_epoch=20, **options)
    return made if isinstance(made, TrainingOptimizer) else TrainingOptimizer(made)


def pruned_values(pruner: StatePruner, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Every weight, gradient and moment entry at a pruned position, by kind."""
    out: dict[str, list[torch.Tensor]] = {}
    for t, mask in zip(pruner.targets, pruner.masks):
        if mask is None:
            continue
        off = ~mask
        out.setdefault("weight", []).append(t.parameter.detach()[off])
        out.setdefault("forward weight", []).append(t.weight.detach()[off])
        if t.parameter.grad is not None:
            out.setdefault("grad", []).append(t.parameter.grad[off])
        for key, value in opt.state[t.parameter].items():
            if isinstance(value, torch.Tensor) and value.shape == mask.shape:
                out.setdefault(key, []).append(value[off])
    return {k: torch.cat(v) for k, v in out.items()}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_pruned_positions_stay_exactly_zero(name, tiny, make_batch):
    torch.manual_seed(0)
    model = tiny()
    opt = build(name, model)
    pruner = StatePruner(prunable_targets(model))
    pruner.bind(opt.optimizer)
    amsgrad = name in ("adamwadv", "adamwspam")
    pruned_before = 0
    for step in range(1, STEPS + 1):
        x, y = make_batch(step)
        opt.optimizer.zero_grad(set_to_none=True)
        (nn.functional.cross_entropy(model(x), y) * (30.0 if step % 13 == 0 else 1.0)).backward()  # spikes
        pruner.before_step(step)
        if pruner.masks[0] is not None:
            assert not pruned_values(pruner, opt.optimizer)["grad"].any(), f"gradient at step {step}"
        opt.process_gradients(step)
        opt.step()
        opt.after_step(step)
        if step in UPDATES:
            pruner.update_masks(UPDATES[step], step)
        pruner.enforce()
        if pruner.masks[0] is None:
            continue
        values = pruned_values(pruner, opt.optimizer)
        expected = {"weight", "forward weight", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if amsgrad else set())
        assert expected <= set(values), sorted(values)
        for key in expected:
            assert not values[key].any(), f"{key} nonzero at a pruned position after step {step}"
        pruned = sum(int((~m).sum()) for m in pruner.masks)
        assert pruned >= pruned_before
        pruned_before = pruned
    total = sum(t.numel() for t in pruner.targets)
    assert pruned_before == round(0.85 * total)
    for t, m in zip(pruner.targets, pruner.masks):  # weight decay ran on the kept weights
        assert t.parameter.detach()[m].abs().min() > 0
    assert opt.optimizer.param_groups[0]["weight_decay"] == 0.1
    if name == "adamwspam":  # the spike and reset paths really ran
        assert opt.spikes > 0 and opt.resets > 0


def test_pruner_state_is_one_byte_per_prunable_weight_on_lenet5():
    torch.manual_seed(0)
    model = LeNet5()
    targets = prunable_targets(model)
    opt = adamwprune(parameter_groups(model, 1e-4), lr=1e-3, weight_decay=1e-4, epochs=1, steps_per_epoch=1)
    pruner = StatePruner(targets)
    pruner.bind(opt)
    nn.functional.cross_entropy(model(torch.randn(8, 1, 32, 32)), torch.randint(0, 10, (8,))).backward()
    opt.step()
    pruner.update_masks(0.7, 1)
    ledger = memory_ledger(model, opt, pruner.state_tensors(), targets)
    assert ledger["prunable_weights"] == 61_470
    assert ledger["pruner_state"] == 61_470
    assert ledger["pruner_state_bytes_per_prunable_weight"] == 1.0
    for t in targets:
        assert ledger["per_prunable_weight"][t.name]["pruner_state"] == t.numel()
    assert all(m.dtype == torch.bool for m in pruner.masks)


def test_nothing_but_masks_persists(trained):
    _, targets, opt = trained
    pruner = StatePruner(targets, variant="bitter0")
    pruner.bind(opt)
    pruner.update_masks(0.5, 1)
    mask_ids = {id(m) for m in pruner.masks}
    held = [
        name
        for name, value in vars(pruner).items()
        if isinstance(value, torch.Tensor)
        or (
            isinstance(value, (list, tuple, dict))
            and any(
                isinstance(v, torch.Tensor) and id(v) not in mask_ids
                for v in (value.values() if isinstance(value, dict) else value)
            )
        )
    ]
    assert held == []
    assert set(pruner.state_tensors()) == {f"mask:{t.name}" for t in targets}
