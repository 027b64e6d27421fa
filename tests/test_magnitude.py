import torch
from torch import nn

from prunekit.builtin.models import lenet5
from prunekit.builtin.optimizers import adamw, sgd
from prunekit.builtin.pruners import magnitude
from prunekit.core.measure.ledger import memory_ledger
from prunekit.core.sparsity.targets import measure_sparsity, prunable_targets
from prunekit.core.train.optim import parameter_groups


def setup(seed=0, optimizer=adamw):
    torch.manual_seed(seed)
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    pruner = magnitude(targets)
    opt = optimizer(parameter_groups(model, 1e-2), lr=1e-2, weight_decay=1e-2, epochs=1, steps_per_epoch=1)
    pruner.bind(opt)
    return model, targets, pruner, opt


def train_steps(model, pruner, opt, steps, start=0, update_at=(), sparsity=0.5):
    g = torch.Generator().manual_seed(start)
    for step in range(start + 1, start + steps + 1):
        x = torch.randn(16, 1, 32, 32, generator=g)
        y = torch.randint(0, 10, (16,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        pruner.before_step(step)
        opt.step()
        if step in update_at:
            pruner.update_masks(sparsity, step)
        pruner.enforce()


def test_global_masks_equal_the_concatenated_reference():
    model, targets, pruner, opt = setup()
    train_steps(model, pruner, opt, 3)
    scores = [t.parameter.detach().abs().flatten() for t in targets]
    k = round(0.6 * sum(s.numel() for s in scores))
    threshold = torch.cat(scores).kthvalue(k).values
    expected = [t.parameter.detach().abs() > threshold for t in targets]
    pruner.update_masks(0.6, 3)
    for mask, want in zip(pruner.masks, expected):
        assert mask.dtype == torch.bool
        assert torch.equal(mask, want)
    assert measure_sparsity(model, targets)["prunable"] == k / 61_470


def test_pruned_weights_stay_zero_in_weight_grad_and_state_through_decay():
    model, targets, pruner, opt = setup()
    train_steps(model, pruner, opt, 40, update_at={5, 10, 20}, sparsity=0.8)
    assert abs(measure_sparsity(model, targets)["prunable"] - 0.8) < 1e-4
    for t, mask in zip(targets, pruner.masks):
        pruned = ~mask
        assert torch.all(t.parameter[pruned] == 0)
        assert torch.all(t.parameter.grad[pruned] == 0)
        state = opt.state[t.parameter]
        assert torch.all(state["exp_avg"][pruned] == 0)
        assert torch.all(state["exp_avg_sq"][pruned] == 0)


def test_masks_only_grow():
    model, targets, pruner, opt = setup()
    pruner.update_masks(0.5, 1)
    before = [m.clone() for m in pruner.masks]
    train_steps(model, pruner, opt, 10)
    pruner.update_masks(0.7, 11)
    for old, new in zip(before, pruner.masks):
        assert not torch.any(new & ~old)  # nothing pruned came back


def test_layer_scope_gives_each_layer_the_sparsity():
    torch.manual_seed(0)
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    pruner = magnitude(targets, scope="layer")
    pruner.update_masks(0.7, 1)
    for t, m in zip(targets, pruner.masks):
        assert (~m).sum().item() == round(0.7 * t.numel())


def test_state_dict_round_trip():
    model, targets, pruner, opt = setup()
    pruner.update_masks(0.5, 1)
    saved = pruner.state_dict()
    other = magnitude(targets)
    other.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(other.masks, pruner.masks))


def test_ledger_lenet5_adamw_magnitude():
    model, targets, pruner, opt = setup()
    train_steps(model, pruner, opt, 2, update_at={2})
    ledger = memory_ledger(model, opt, pruner.state_tensors(), targets)
    assert ledger["parameters"] == 247_000
    assert ledger["gradients"] == 247_000
    assert ledger["optimizer_state"] == 494_000
    assert ledger["optimizer_scalars"] == 14 * 4  # one float32 `step` per parameter tensor
    assert ledger["pruner_state"] == 61_470
    assert ledger["pruner_state_bytes_per_prunable_weight"] == 1.0
    per = ledger["per_prunable_weight"]["classifier.1.weight"]
    assert per == {
        "parameter": 192_000,
        "gradient": 192_000,
        "optimizer_state": 384_000,
        "pruner_state": 48_000,
        "pruner_transient": 0,
    }


def test_ledger_counts_shared_storage_once():
    lin = nn.Linear(4, 4, bias=False)
    tied = nn.Sequential(lin, nn.Linear(4, 4, bias=False))
    tied[1].weight = lin.weight
    ledger = memory_ledger(tied, None, {}, prunable_targets(tied))
    assert ledger["parameters"] == 4 * 4 * 4


def test_sgd_momentum_is_zeroed_too():
    model, targets, pruner, opt = setup(optimizer=sgd)
    train_steps(model, pruner, opt, 10, update_at={3, 6}, sparsity=0.5)
    for t, mask in zip(targets, pruner.masks):
        assert torch.all(opt.state[t.parameter]["momentum_buffer"][~mask] == 0)
