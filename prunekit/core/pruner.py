"""The pruner protocol, and a base class for boolean-mask pruners.

The core drives a pruner through one training step like this::

    loss.backward()
    pruner.before_step(step)          # mask gradients, read gradients
    optimizer-specific gradient processing and clipping
    optimizer.step()
    if schedule.is_update_step(step):
        pruner.update_masks(sparsity, step)
    pruner.enforce()                  # pruned weights are exactly zero again

``state_tensors()`` exposes every tensor the pruner keeps between steps so the
core can count their bytes itself; ``state_dict``/``load_state_dict`` save and
restore it.
"""

from __future__ import annotations

from typing import Any

import torch

from prunekit.core.options import Option
from prunekit.core.targets import Target
from prunekit.core.threshold import apply_mask_, update_masks_

#: Per-weight optimizer state names that a mask also zeroes.
MASKED_OPTIMIZER_STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")

#: The ``scope`` option of every :class:`MaskPruner`; declare it in a mask pruner's options.
SCOPE_OPTION = Option(
    "scope", str, "global", "one threshold over all layers, or the same sparsity per layer", choices=("global", "layer")
)


class Pruner:
    """Base class of every pruner: a dense no-op. Override what you need."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets
        self.optimizer: torch.optim.Optimizer | None = None

    def bind(self, optimizer: torch.optim.Optimizer) -> None:
        """Called once, after the optimizer over the model's parameters exists."""
        self.optimizer = optimizer

    def before_step(self, step: int) -> None:
        """After backward, before gradient processing and ``optimizer.step()``."""

    def update_masks(self, sparsity: float, step: int) -> None:
        """Recompute masks for the scheduled ``sparsity`` (after the optimizer step)."""

    def enforce(self) -> None:
        """After every optimizer step (and mask update): apply the masks."""

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor kept between steps, by a descriptive name."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class MaskPruner(Pruner):
    """Boolean masks (one byte per prunable weight) over a per-layer score.

    Subclasses implement :meth:`score`; one whose scores are always new
    tensors that nothing else holds sets ``fresh_scores = True``, which lets
    mask updates work in place in them (saving one layer-sized copy).
    ``scope="global"`` uses one exact
    threshold over all layers, ``"layer"`` gives each layer the scheduled
    sparsity. Masks only grow: a pruned weight stays pruned.
    """

    fresh_scores = False

    def __init__(self, targets: list[Target], scope: str = "global") -> None:
        super().__init__(targets)
        self.scope = scope
        self.masks: list[torch.Tensor | None] = [None] * len(targets)

    def score(self, index: int, target: Target) -> torch.Tensor:
        """Importance of each weight of ``target`` (higher is kept)."""
        raise NotImplementedError

    @torch.no_grad()
    def update_masks(self, sparsity: float, step: int) -> None:
        for i, target in enumerate(self.targets):
            if self.masks[i] is None:
                self.masks[i] = torch.ones_like(target.parameter, dtype=torch.bool)
        groups = [list(range(len(self.targets)))] if self.scope == "global" else [[i] for i in range(len(self.targets))]
        for indices in groups:
            scorers = [lambda i=i: self.score(i, self.targets[i]) for i in indices]
            masks = [self.masks[i] for i in indices]
            update_masks_(scorers, [m for m in masks if m is not None], sparsity, self.fresh_scores)
        self.zero_optimizer_state()
        self.enforce()

    @torch.no_grad()
    def before_step(self, step: int) -> None:
        for target, mask in zip(self.targets, self.masks):
            grad = target.parameter.grad
            if mask is not None and grad is not None:
                apply_mask_(grad, mask)

    @torch.no_grad()
    def enforce(self) -> None:
        for target, mask in zip(self.targets, self.masks):
            if mask is not None:
                apply_mask_(target.parameter, mask)

    @torch.no_grad()
    def zero_optimizer_state(self) -> None:
        """Zero the optimizer's per-weight state at pruned positions.

        With gradients masked, zeroed moments stay zero, so this runs only when
        masks change.
        """
        if self.optimizer is None:
            return
        for target, mask in zip(self.targets, self.masks):
            if mask is None:
                continue
            state = self.optimizer.state.get(target.parameter, {})
            for key in MASKED_OPTIMIZER_STATE:
                value = state.get(key)
                if isinstance(value, torch.Tensor) and value.shape == mask.shape:
                    apply_mask_(value, mask)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"mask:{t.name}": m for t, m in zip(self.targets, self.masks) if m is not None}

    def state_dict(self) -> dict[str, Any]:
        return {"masks": [None if m is None else m.clone() for m in self.masks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        masks = state["masks"]
        if len(masks) != len(self.targets):
            raise ValueError("mask count does not match the prunable set")
        self.masks = [
            None if m is None else m.to(device=t.parameter.device, dtype=torch.bool).clone() for t, m in zip(self.targets, masks)
        ]
