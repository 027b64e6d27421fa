"""Conformance checks every prunekit pruner must pass, reusable by plugin authors.

:func:`check_pruner` drives a pruner exactly as the core's runner does, on a
LeNet-5 with AdamW (so Adam state exists for state-based pruners), and raises
``AssertionError`` naming the broken rule::

    from prunekit.testing.pruner_conformance import check_pruner

    def test_my_pruner_conforms():
        check_pruner(my_factory, options={"scope": "global"})

The rules:

- after ``update_masks(s)`` the weights the forward pass uses have sparsity ``s``
  (within half a percentage point, for ties), over the prunable set;
- training steps between updates keep that sparsity (``before_step`` + ``enforce``);
- a later update to a higher ``s`` reaches it too;
- ``state_tensors()`` returns tensors named ``"<what>:<target name>"`` for real targets;
- ``state_dict()`` restored into a fresh pruner gives the same state tensors;
- ``Pruner`` methods accept being called before any optimizer state exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from prunekit.builtin.models import lenet5
from prunekit.builtin.optimizers import adamw
from prunekit.core.optim import parameter_groups
from prunekit.core.targets import measure_sparsity, prunable_targets

TOLERANCE = 0.005


def _train(model, pruner, opt, steps: int, first_step: int, generator) -> None:
    for step in range(first_step, first_step + steps):
        x = torch.randn(8, 1, 32, 32, generator=generator)
        y = torch.randint(0, 10, (8,), generator=generator)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        pruner.before_step(step)
        opt.step()
        pruner.enforce()


def _build(factory: Callable[..., Any], options: dict, seed: int):
    torch.manual_seed(seed)
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    pruner = factory(targets, **options)
    opt = adamw(parameter_groups(model, 1e-4), lr=1e-3, weight_decay=1e-4, epochs=1, steps_per_epoch=1)
    pruner.bind(opt)
    return model, targets, pruner, opt


def check_pruner(factory: Callable[..., Any], options: dict | None = None, sparsities=(0.5, 0.8), seed: int = 0) -> dict:
    """Run the rules above; return the achieved sparsity after each update."""
    options = dict(options or {})
    model, targets, pruner, opt = _build(factory, options, seed)
    names = {t.name for t in targets}
    g = torch.Generator().manual_seed(seed)

    pruner.before_step(0)  # no gradients and no optimizer state yet: must not fail
    pruner.enforce()
    _train(model, pruner, opt, 3, 1, g)
    achieved = {}
    step = 4
    for s in sparsities:
        pruner.update_masks(s, step)
        pruner.enforce()
        got = measure_sparsity(model, targets)["prunable"]
        assert abs(got - s) <= TOLERANCE, f"after update_masks({s}) the forward weights are {got:.4f} sparse"
        _train(model, pruner, opt, 3, step + 1, g)
        step += 4
        kept = measure_sparsity(model, targets)["prunable"]
        assert abs(kept - s) <= TOLERANCE, f"training steps changed sparsity from {s} to {kept:.4f}"
        achieved[s] = got

    state = pruner.state_tensors()
    assert isinstance(state, dict)
    for name, tensor in state.items():
        assert isinstance(tensor, torch.Tensor), f"state tensor {name!r} is not a tensor"
        what, sep, owner = name.partition(":")
        assert sep and what and owner in names, f"state tensor {name!r} is not named '<what>:<target name>'"

    saved = pruner.state_dict()
    _, _, fresh, fresh_opt = _build(factory, options, seed)
    fresh.load_state_dict(saved)
    restored = fresh.state_tensors()
    assert set(restored) == set(state), "state_dict round trip lost or added state tensors"
    for name in state:
        assert torch.equal(restored[name].cpu(), state[name].cpu()), f"state_dict round trip changed {name!r}"
    return achieved
