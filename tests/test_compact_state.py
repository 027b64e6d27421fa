"""state_storage=compact: moments for live weights only, stepped bit for bit like dense state."""

from __future__ import annotations

import copy

import pytest
import torch

from prunekit.builtin.models import lenet5
from prunekit.builtin.pruners import MagnitudePruner
from prunekit.core.measure.ledger import memory_ledger
from prunekit.core.sparsity.compact_layout import Layout, kernel_lanes
from prunekit.core.sparsity.compact_state import compact_state, dense_state, live_values, with_state_storage
from prunekit.core.sparsity.targets import prunable_targets
from prunekit.core.train.optim import TrainingOptimizer, parameter_groups

SHAPES = [(7,), (16, 3), (33, 5, 3), (4099,), (2, 70001)]  # vector bodies, scalar tails, several chunks

OPTIMIZERS = {
    "adam-fused": lambda ps: torch.optim.Adam(ps, lr=1e-2, fused=True),
    "adamw-fused": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, fused=True),
    "adamw-amsgrad-fused": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, amsgrad=True, fused=True),
    "adamw-foreach": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, foreach=True),
    "adamw-amsgrad-single": lambda ps: torch.optim.AdamW(ps, lr=1e-2, amsgrad=True, foreach=False),
}


def _pair(make, storage="compact"):
    g = torch.Generator().manual_seed(0)
    dense = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES] + [torch.nn.Parameter(torch.randn(5))]
    compact = [torch.nn.Parameter(p.detach().clone()) for p in dense]
    return dense, compact, make(dense), with_state_storage(make(compact), storage)


def _prune(params, opt, masks, compact: bool):
    """What a mask pruner does at an update: zero pruned weights and (dense) their moments or (compact) drop them."""
    for p, mask in zip(params, masks):
        p.detach().mul_(mask)
        if compact:
            compact_state(opt).drop_pruned(p, mask)
        else:
            for value in opt.state.get(p, {}).values():
                if value.dim() > 0:
                    value.mul_(mask)


@pytest.mark.parametrize("storage", ["compact", "compact-indexed"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_compact_step_is_bit_identical_to_dense(name, storage):
    dense, compact, od, oc = _pair(OPTIMIZERS[name], storage)
    g = torch.Generator().manual_seed(1)
    masks = [torch.ones(s, dtype=torch.bool) for s in SHAPES]
    for step in range(8):
        if step in (0, 3, 6):  # before any state exists, then as masks shrink
            masks = [m & (torch.rand(m.shape, generator=g) > 0.35) for m in masks]
            _prune(dense[:-1], od, masks, compact=False)
            _prune(compact[:-1], oc, masks, compact=True)
        for i, (a, b) in enumerate(zip(dense, compact)):
            grad = torch.randn(a.shape, generator=g) * (masks[i] if i < len(masks) else 1)
            a.grad, b.grad = grad.clone(), grad.clone()
        od.step()
        oc.step()
        for i, (a, b) in enumerate(zip(dense, compact)):
            assert torch.equal(a, b), (name, step, i)
            for key, value in od.state[a].items():
                if value.dim() > 0:
                    assert torch.equal(dense_state(oc, b, key), value), (name, step, i, key)
    lanes = kernel_lanes(oc, compact[0])
    for p, m in zip(compact[:-1], masks):  # moments of live weights only, + zeros up to the kernel's width
        assert 0 <= oc.state[p]["exp_avg"].numel() - int(m.sum()) < lanes
    assert oc.state[compact[-1]]["exp_avg"].shape == (5,)  # a weight never pruned keeps dense state
    kept = compact_state(oc).layouts
    assert (set(kept) == set(compact[:-1])) == (storage == "compact-indexed")
    assert all(layout.body.dtype == torch.int32 for layout in kept.values())


def test_regrown_weights_start_with_zero_moments():
    (p,) = [torch.nn.Parameter(torch.randn(40))]
    opt = with_state_storage(torch.optim.AdamW([p], lr=1e-2, fused=True), "compact")
    p.grad = torch.randn(40)
    opt.step()
    before = opt.state[p]["exp_avg"].clone()
    first = torch.arange(40) % 2 == 0
    compact_state(opt).drop_pruned(p, first)
    assert torch.equal(dense_state(opt, p, "exp_avg"), before * first)
    second = (torch.arange(40) % 4 == 0) | (torch.arange(40) == 1)  # drop half the live ones, regrow weight 1
    compact_state(opt).drop_pruned(p, second)
    expected = torch.where(first & second, before, torch.zeros(40))
    assert torch.equal(dense_state(opt, p, "exp_avg"), expected * second)
    grad = torch.arange(40.0)
    with live_values(opt, p, grad) as values:  # laid out like the moments: live ones, zeros up to the kernel's width
        layout = compact_state(opt).layout(p)
        assert values.shape == opt.state[p]["exp_avg"].shape == (layout.size,) and layout.pad < 64
        assert torch.equal(values[: int(second.sum())], grad[second]) and not values[int(second.sum()) :].any()
        values.mul_(-1)
    assert torch.equal(grad, torch.where(second, -torch.arange(40.0), torch.arange(40.0)))


def _lenet_at_90(storage: str):
    torch.manual_seed(0)
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    opt = TrainingOptimizer(with_state_storage(torch.optim.AdamW(parameter_groups(model, 1e-4), fused=True), storage))
    pruner = MagnitudePruner(targets)
    pruner.bind(opt.optimizer)
    model(torch.randn(4, 1, 32, 32)).sum().backward()
    opt.step()
    pruner.update_masks(0.9, 1)
    return model, targets, opt, pruner


def test_ledger_counts_compact_state_exactly_on_lenet5_at_90_percent():
    # LeNet-5's prunable weights: 150 + 2,400 + 48,000 + 10,080 + 840 = 61,470; 280 others (biases, batch norm).
    # 90% global: 55,323 pruned, 6,147 live. Compact AdamW state: exp_avg + exp_avg_sq = 8 B per live weight,
    # positions packed 8 to a byte: 19 + 300 + 6,000 + 1,260 + 105 = 7,684 B; the 280 others keep 8 B each.
    # That is 56,860 B (0.925 B per prunable weight), plus 8 B per zero that pads a layer's vector body to
    # the fused CPU kernel's width (under 8 per layer with AVX2: 18 on this model, 144 B).
    model, targets, opt, pruner = _lenet_at_90("compact")
    assert [t.numel() for t in targets] == [150, 2400, 48000, 10080, 840]
    assert sum(int(m.sum()) for m in pruner.masks) == 6147
    compact = compact_state(opt.optimizer)
    pads = [compact.layout(t.parameter).pad for t in targets]
    assert all(0 <= pad < kernel_lanes(opt.optimizer, t.parameter) for pad, t in zip(pads, targets))
    ledger = memory_ledger(model, opt.optimizer, pruner.state_tensors(), targets)
    per_weight = sum(v["optimizer_state"] for v in ledger["per_prunable_weight"].values())
    assert per_weight == 8 * 6147 + 7684 + 8 * sum(pads)
    assert ledger["optimizer_state"] == per_weight + 8 * 280
    dense = _lenet_at_90("dense")
    assert memory_ledger(dense[0], dense[2].optimizer, {}, dense[1])["optimizer_state"] == 8 * 61750  # 494,000 B
    for a, b in zip(model.parameters(), dense[0].parameters()):
        assert torch.equal(a, b)


def test_compact_indexed_ledger_adds_4_bytes_per_live_weight_and_a_checkpoint_rebuilds_the_indices():
    # as compact (above), plus the int32 index of each of the 6,147 live weights: 24,588 B
    model, targets, opt, pruner = _lenet_at_90("compact-indexed")
    plain = _lenet_at_90("compact")
    pads = [compact_state(opt.optimizer).layout(t.parameter).pad for t in targets]
    per_weight = sum(
        v["optimizer_state"] for v in memory_ledger(model, opt.optimizer, {}, targets)["per_prunable_weight"].values()
    )
    assert per_weight == 8 * 6147 + 7684 + 8 * sum(pads) + 4 * 6147
    plain_per_weight = memory_ledger(plain[0], plain[2].optimizer, {}, plain[1])["per_prunable_weight"].values()
    assert per_weight - sum(v["optimizer_state"] for v in plain_per_weight) == 4 * 6147
    fresh = _lenet_at_90("compact-indexed")[2]
    compact_state(fresh.optimizer).layouts.clear()
    fresh.load_state_dict(opt.state_dict())
    kept = compact_state(fresh.optimizer).layouts
    originals = compact_state(opt.optimizer).layouts
    assert len(kept) == len(originals) == 5
    for param, layout in kept.items():
        original = next(v for p, v in originals.items() if p.shape == param.shape)
        assert torch.equal(layout.body, original.body) and torch.equal(layout.tail, original.tail)


def test_a_checkpoint_restores_compact_state_and_refuses_positions_that_do_not_fit():
    model, targets, opt, pruner = _lenet_at_90("compact")
    saved = opt.state_dict()
    fresh = _lenet_at_90("compact")[2]
    fresh.load_state_dict(saved)
    fc1 = targets[2].parameter
    fresh_fc1 = next(p for p in fresh.parameters() if p.shape == fc1.shape)
    assert torch.equal(dense_state(fresh.optimizer, fresh_fc1, "exp_avg_sq"), dense_state(opt.optimizer, fc1, "exp_avg_sq"))
    positions = saved["compact_positions"]["positions"]

    def edited(**change):
        return dict(saved, compact_positions=dict(saved["compact_positions"], **change))

    with pytest.raises(ValueError, match="moments do not match their positions"):
        fresh.load_state_dict(edited(positions=[p if p is None else torch.zeros_like(p) for p in positions]))
    with pytest.raises(ValueError, match="wrong size"):
        fresh.load_state_dict(edited(positions=[p if p is None else p[:-1] for p in positions]))
    with pytest.raises(ValueError, match="disagree on state_storage"):
        _lenet_at_90("dense")[2].load_state_dict(saved)


def test_a_checkpoint_from_a_cpu_of_another_vector_width_is_laid_out_again():
    model, targets, opt, pruner = _lenet_at_90("compact")
    saved = copy.deepcopy(opt.state_dict())  # torch's state_dict shares the live state dicts
    compact = compact_state(opt.optimizer)
    params = [p for group in opt.optimizer.param_groups for p in group["params"]]
    state = saved["optimizer"]["state"]
    for index, param in enumerate(params):  # as a machine without a scalar tail (lanes 1) would have saved it
        if param in compact.positions:
            for key in ("exp_avg", "exp_avg_sq"):
                state[index][key] = Layout(compact.live(param), 1).gather(dense_state(opt.optimizer, param, key).view(-1))
    saved["compact_positions"]["lanes"] = [1 if p in compact.positions else None for p in params]
    fresh = _lenet_at_90("compact")[2]
    fresh.load_state_dict(saved)
    for a, b in zip(params, fresh.parameters()):
        assert torch.equal(dense_state(fresh.optimizer, b, "exp_avg"), dense_state(opt.optimizer, a, "exp_avg"))


def test_a_sparsifier_on_a_compact_optimizer_matches_dense_and_counts_each_step_once():
    import prunekit

    runs = {}
    for storage in ("dense", "compact"):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 5))
        opt = with_state_storage(torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True), storage)
        sparsifier = prunekit.Sparsifier(model, opt, sparsity=0.8, total_steps=12, warmup=2, prune_end=8, frequency=2)
        g = torch.Generator().manual_seed(1)
        for _ in range(12):
            opt.zero_grad()
            model(torch.randn(8, 20, generator=g)).square().mean().backward()
            opt.step()
        runs[storage] = (model, opt, sparsifier)
    (dense, _, s_dense), (compact, opt, s_compact) = runs["dense"], runs["compact"]
    assert compact_state(opt).positions and s_compact.sparsity() == s_dense.sparsity()
    assert s_compact.describe() == s_dense.describe()  # steps seen, mask updates: once per optimizer step
    for a, b in zip(dense.parameters(), compact.parameters()):
        assert torch.equal(a, b)


def test_channels_last_weights_step_bit_identically():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(6, 5, 3, 3, generator=g)
    dense, compact = (torch.nn.Parameter(base.clone().to(memory_format=torch.channels_last)) for _ in range(2))
    od = torch.optim.AdamW([dense], lr=1e-2, fused=True)
    oc = with_state_storage(torch.optim.AdamW([compact], lr=1e-2, fused=True), "compact")
    mask = torch.rand(base.shape, generator=g) > 0.6  # row-major, as every pruner's mask
    for step in range(5):
        if step == 1:
            _prune([dense], od, [mask], compact=False)
            _prune([compact], oc, [mask], compact=True)
        grad = (torch.randn(base.shape, generator=g) * mask).to(memory_format=torch.channels_last)
        dense.grad, compact.grad = grad.clone(), grad.clone()
        od.step()
        oc.step()
        assert torch.equal(dense, compact) and compact.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(dense_state(oc, compact, "exp_avg_sq"), od.state[dense]["exp_avg_sq"])


@pytest.mark.parametrize("storage", ["compact", "compact-indexed"])
def test_a_mask_update_inside_the_step_pre_hook_compacts_that_very_step(storage):
    """SNIP in a Sparsifier picks its masks in the optimizer's pre-hook, on the first step."""
    pytest.importorskip("prunekit_dst")
    import prunekit

    runs = {}
    for kind in ("dense", storage):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(7, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        opt = with_state_storage(torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True), kind)
        sparsifier = prunekit.Sparsifier(model, opt, pruner="snip", sparsity=0.6, schedule="constant", total_steps=5)
        g = torch.Generator().manual_seed(1)
        for _ in range(5):
            opt.zero_grad()
            model(torch.randn(16, 7, generator=g)).square().mean().backward()
            opt.step()
        runs[kind] = (model, opt, sparsifier)
    (dense, _, s_dense), (compact, opt, s_compact) = runs["dense"], runs[storage]
    assert s_compact.step == s_dense.step == 5 and compact_state(opt).positions
    for param in compact_state(opt).positions:  # moments for live weights only (+ padding to the kernel's width)
        assert opt.state[param]["exp_avg"].dim() == 1 and opt.state[param]["exp_avg"].numel() < param.numel()
    for a, b in zip(dense.parameters(), compact.parameters()):
        assert torch.equal(a, b)
