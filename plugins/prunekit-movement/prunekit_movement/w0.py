"""The original AdamWPrune code's movement proxy: score ``W * (W - W0)``.

``W0`` is an fp32 copy of each prunable weight taken when the pruner is bound
to the optimizer (before the first step). Boolean masks from
:class:`~prunekit.core.sparsity.pruner.MaskPruner`: pruned weights are zeroed, get no
gradient and never return. Kept: 4 bytes (``W0``) + 1 byte (mask, from the
first update) per prunable weight.
"""

from __future__ import annotations

from typing import Any

import torch

from prunekit.api import MaskPruner, Target


class MovementW0Pruner(MaskPruner):
    """Prune the lowest ``W * (W - W0)``: weights that moved least away from zero."""

    def __init__(
        self, targets: list[Target], scope: str = "global", mask_storage: str = "bool", structure: str = "unstructured"
    ) -> None:
        super().__init__(targets, scope=scope, mask_storage=mask_storage)
        self.set_structure(structure)
        self.initial: list[torch.Tensor | None] = [None] * len(targets)

    def bind(self, optimizer: torch.optim.Optimizer) -> None:
        super().bind(optimizer)
        self.snapshot()

    @torch.no_grad()
    def snapshot(self) -> None:
        """Record ``W0`` for every weight that has none yet."""
        for i, target in enumerate(self.targets):
            if self.initial[i] is None:
                self.initial[i] = target.parameter.detach().to(torch.float32, copy=True)

    fresh_scores = True  # W * (W - W0) is a new tensor each time

    def score(self, index: int, target: Target) -> torch.Tensor:
        if self.initial[index] is None:
            self.snapshot()
        initial = self.initial[index]
        assert initial is not None  # snapshot() recorded it
        weight = target.parameter.detach().to(torch.float32)
        return weight * (weight - initial)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = super().state_tensors()
        out.update({f"w0:{t.name}": w for t, w in zip(self.targets, self.initial) if w is not None})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "initial": [None if w is None else w.clone() for w in self.initial]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        initial = state["initial"]
        if len(initial) != len(self.targets):
            raise ValueError("initial-weight count does not match the prunable set")
        self.initial = [
            None if w is None else w.to(t.parameter.device, torch.float32).clone() for t, w in zip(self.targets, initial)
        ]
