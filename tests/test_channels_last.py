"""Issue 18.5: mask, score and threshold operations on weights in channels_last memory format."""

from __future__ import annotations

from copy import deepcopy as copy_model

import pytest
import torch
import torch.nn.functional as F

from prunekit.builtin.models import timm_model
from prunekit.builtin.optimizers import adamw
from prunekit.core.plugins.loading import build as load_plugins
from prunekit.core.sparsity.targets import measure_sparsity, prunable_targets
from prunekit.core.train.optim import parameter_groups

UPDATES = {2: 0.5, 3: 0.7}


@pytest.fixture(scope="module")
def registry():
    return load_plugins().registry


def train(registry, pruner: str, options: dict, channels_last: bool):
    """timm's tiny test ResNet at 32x32, four AdamW steps, masks at steps 2 and 3 (the runner's order)."""
    torch.manual_seed(0)
    model = timm_model(10, 3, 32, name="timm:test_resnet")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    targets = prunable_targets(model)
    assert any(not t.parameter.is_contiguous() for t in targets) == channels_last
    p = registry.entries["pruners"][pruner].factory(targets, **options)
    opt = adamw(parameter_groups(model, 1e-4), lr=1e-2, weight_decay=1e-4, epochs=1, steps_per_epoch=4)
    p.bind(opt)
    g = torch.Generator().manual_seed(0)
    for step in range(1, 5):
        x, y = torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        p.before_step(step)
        opt.step()
        if step in UPDATES:
            p.update_masks(UPDATES[step], step)
        p.enforce()
    return model, targets, p, opt


CASES = [
    ("magnitude", {"mask_storage": "bool"}),
    ("magnitude", {"mask_storage": "bits"}),
    ("magnitude", {"mask_storage": "implicit"}),
    ("magnitude", {"scope": "layer", "mask_storage": "bits"}),
    ("state", {"mask_storage": "bool"}),
    ("state", {"mask_storage": "bits"}),
    ("state", {"mask_storage": "implicit"}),
    ("movement", {}),
]


@pytest.mark.parametrize("pruner, options", CASES, ids=[f"{n}-{'-'.join(map(str, o.values())) or 'default'}" for n, o in CASES])
def test_channels_last_weights_are_pruned_exactly(registry, pruner, options):
    """Before the fix the first mask operation raised 'view size is not compatible'."""
    model, targets, p, opt = train(registry, pruner, options, channels_last=True)
    total = sum(t.numel() for t in targets)
    forward = [t.weight.detach() for t in targets]  # what the forward pass uses (movement: W * mask)
    zeros = sum(int((w == 0).sum()) for w in forward)
    assert zeros == round(0.7 * total) if options.get("scope", "global") == "global" else zeros > 0.69 * total
    for t, mask in zip(targets, p.masks):
        assert not t.weight.detach()[~mask].any()  # pruned positions are zero
        if pruner != "movement":
            grad, state = t.parameter.grad, opt.state[t.parameter]
            assert not grad[~mask].any() and not state["exp_avg"][~mask].any() and not state["exp_avg_sq"][~mask].any()
    assert all(not t.parameter.is_contiguous() for t in targets if t.parameter.ndim == 4 and t.parameter.shape[-1] > 1)
    if pruner != "movement":
        assert measure_sparsity(model, targets)["prunable"] == pytest.approx(0.7, abs=1e-4)


@pytest.mark.parametrize("storage", ["bool", "bits", "implicit"])
def test_channels_last_masks_equal_the_contiguous_models(registry, storage):
    """The same weights give the same masks whatever their memory format (masks are row-major)."""
    torch.manual_seed(0)
    model = timm_model(10, 3, 32, name="timm:resnet18")
    masks = []
    for layout in (torch.contiguous_format, torch.channels_last):
        copy = copy_model(model).to(memory_format=layout)
        p = registry.entries["pruners"]["magnitude"].factory(prunable_targets(copy), mask_storage=storage)
        p.update_masks(0.7, 0)
        p.enforce()
        masks.append(p.masks)
    assert all(torch.equal(a, b) for a, b in zip(*masks))
