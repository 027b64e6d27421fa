"""SNIP (Lee, Ajanthan & Torr 2019, "SNIP: Single-shot Network Pruning based on
Connection Sensitivity"): masks chosen once from the connection sensitivity
``|w * dL/dw|`` on the first training batch, then held fixed.

With the constant schedule the core asks for the masks at step 0, before any
gradient exists; the selection then happens in ``before_step(1)``, from the
gradient of the first batch at the initial weights (the dense network), and
that first optimizer step already uses the masked gradient. The paper's
normalisation of the sensitivities by their sum does not change which are kept.
Kept between steps: one ``torch.bool`` mask per prunable weight.
"""

from __future__ import annotations

import torch

from prunekit.api import MaskPruner, Target


class SnipPruner(MaskPruner):
    """Keep the weights with the largest |w * g| (global by default, as in the paper)."""

    fresh_scores = True  # |w * g| is a new tensor each time

    def __init__(self, targets: list[Target], scope: str = "global") -> None:
        super().__init__(targets, scope=scope)
        self.pending: float | None = None  # sparsity asked for before any gradient existed

    def score(self, index: int, target: Target) -> torch.Tensor:
        param = target.parameter.detach()
        grad = target.parameter.grad
        if grad is None:  # a layer the loss did not reach: sensitivity 0
            return torch.zeros_like(param, dtype=torch.float32)
        return (param * grad).abs_().float()

    def _has_gradients(self) -> bool:
        return any(t.parameter.grad is not None for t in self.targets)

    @torch.no_grad()
    def update_masks(self, sparsity: float, step: int) -> None:
        if not self._has_gradients():
            self.pending = sparsity  # chosen at the first before_step, from that batch
            return
        self.pending = None
        super().update_masks(sparsity, step)

    @torch.no_grad()
    def before_step(self, step: int) -> None:
        if self.pending is not None and self._has_gradients():
            sparsity, self.pending = self.pending, None
            super().update_masks(sparsity, step)
        super().before_step(step)

    def state_dict(self) -> dict:
        return super().state_dict() | {"pending": self.pending}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.pending = state.get("pending")
