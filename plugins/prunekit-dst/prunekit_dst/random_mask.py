"""The random baseline: a fixed random mask at the target sparsity.

Scores are uniform noise drawn per (seed, step, layer) on the CPU and never
kept, so the only state is one ``torch.bool`` mask per prunable weight. With
``scope=layer`` or ``erk`` each layer gets exactly its share; with ``global``
one threshold over all the noise decides (so per-layer sparsities vary around
the target). Frankle et al. (2021) argue every pruning-at-initialisation method
should be compared with a random mask of the same layer-wise densities.
"""

from __future__ import annotations

from typing import Any

import torch

from prunekit.api import MaskPruner, Target
from prunekit_dst.select import run_seed, uniform


class RandomPruner(MaskPruner):
    """Prune uniformly at random (the floor any method must beat)."""

    fresh_scores = True

    def __init__(self, targets: list[Target], scope: str = "layer", seed: int | None = None) -> None:
        super().__init__(targets, scope=scope)
        self.seed = run_seed() if seed is None else seed
        self._step = 0

    def score(self, index: int, target: Target) -> torch.Tensor:
        param = target.parameter
        return uniform(param.shape, param.device, self.seed, "random", self._step, index)

    @torch.no_grad()
    def update_masks(self, sparsity: float, step: int) -> None:
        self._step = step  # the same scores on every pass of this update
        super().update_masks(sparsity, step)

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.seed = int(state["seed"])
