"""SNIP (Lee, Ajanthan & Torr 2019, "SNIP: Single-shot Network Pruning based on
Connection Sensitivity"): masks chosen once from the connection sensitivity
``|w * dL/dw|`` on the first training batch(es), then held fixed.

With the constant schedule the core asks for the masks at step 0, before any
gradient exists; the selection then happens in ``before_step(batches)``. With
``batches = 1`` (the paper) it scores the gradient of the first batch at the
initial weights (the dense network), and that first optimizer step already uses
the masked gradient. With ``batches = B > 1`` the sensitivity is
``|sum_b w_b * g_b|`` over the first B batches (``w_b`` the weights batch b's
gradient ``g_b`` was taken at): the derivative of the summed loss with respect
to the mask, which is what the SynFlow code of Tanaka et al. (2020) accumulates
for its SNIP baseline (``|w * sum_b g_b|`` at fixed weights). Here the first
B - 1 steps train the dense network, so ``w_b`` moves a little between batches.
The paper's normalisation of the sensitivities by their sum does not change
which are kept. A batch with a non-finite gradient (an fp16 overflow, whose
optimizer step the GradScaler skips) is not scored: the next one is.

Kept between steps: one ``torch.bool`` mask per prunable weight; with B > 1,
until the selection, also the running sum (fp32, 4 B per prunable weight),
reported as ``sensitivity:<layer>`` in ``state_tensors`` while held and as its
peak in ``transient_bytes``.
"""

from __future__ import annotations

from typing import Any

import torch

from prunekit.api import MaskPruner, Target


class SnipPruner(MaskPruner):
    """Keep the weights with the largest |w * g| (global by default, as in the paper)."""

    fresh_scores = True  # |w * g| is a new tensor each time

    def __init__(self, targets: list[Target], scope: str = "global", batches: int = 1) -> None:
        if batches < 1:
            raise ValueError("batches must be at least 1")
        super().__init__(targets, scope=scope)
        self.batches = batches
        self.pending: float | None = None  # sparsity asked for before any gradient existed
        self.scored = 0  # batches summed so far (batches > 1)
        self.sums: list[torch.Tensor | None] = [None] * len(targets)
        self._transient: dict[str, int] = {}

    def score(self, index: int, target: Target) -> torch.Tensor:
        if self.scored:
            held = self.sums[index]
            assert held is not None
            return held.abs()
        return self._sensitivity(target).abs_()

    @staticmethod
    def _sensitivity(target: Target) -> torch.Tensor:
        """``w * g`` in fp32 (a new tensor); 0 for a layer the loss did not reach."""
        param = target.parameter.detach()
        grad = target.parameter.grad
        if grad is None:
            return torch.zeros_like(param, dtype=torch.float32)
        return (param * grad).float()

    def _has_gradients(self) -> bool:
        return any(t.parameter.grad is not None for t in self.targets)

    def _finite_gradients(self) -> bool:
        grads = [t.parameter.grad for t in self.targets if t.parameter.grad is not None]
        return bool(grads) and all(bool(torch.isfinite(g).all()) for g in grads)

    @torch.no_grad()
    def update_masks(self, sparsity: float, step: int) -> None:
        if not self._has_gradients() and not self.scored:
            self.pending = sparsity  # chosen in before_step, from the first batch(es)
            return
        self.pending = None
        self._select(sparsity, step)

    @torch.no_grad()
    def before_step(self, step: int) -> None:
        if self.pending is not None and self._finite_gradients():
            if self.batches == 1:
                sparsity, self.pending = self.pending, None
                self._select(sparsity, step)
            else:
                self._accumulate()
                if self.scored >= self.batches:
                    sparsity, self.pending = self.pending, None
                    self._select(sparsity, step)
        super().before_step(step)

    def _accumulate(self) -> None:
        for i, target in enumerate(self.targets):
            term = self._sensitivity(target)
            held = self.sums[i]
            summed = term if held is None else held.add_(term)
            self.sums[i] = summed
            key = f"sensitivity:{target.name}"
            self._transient[key] = max(self._transient.get(key, 0), summed.untyped_storage().nbytes())
        self.scored += 1

    def _select(self, sparsity: float, step: int) -> None:
        try:
            super().update_masks(sparsity, step)
        finally:
            self.sums = [None] * len(self.targets)
            self.scored = 0

    def state_tensors(self) -> dict[str, torch.Tensor]:
        held = {f"sensitivity:{t.name}": s for t, s in zip(self.targets, self.sums) if s is not None}
        return super().state_tensors() | held

    def transient_bytes(self) -> dict[str, int]:
        return dict(self._transient)

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "pending": self.pending,
            "scored": self.scored,
            "sums": [None if s is None else s.clone() for s in self.sums],
            "transient": dict(self._transient),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pending = state.get("pending")
        self.scored = int(state.get("scored", 0))
        sums = state.get("sums") or [None] * len(self.targets)
        self.sums = [None if s is None else s.to(t.parameter.device).clone() for t, s in zip(self.targets, sums)]
        self._transient = {str(k): int(v) for k, v in (state.get("transient") or {}).items()}
