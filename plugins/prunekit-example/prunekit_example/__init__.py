"""prunekit_example: a complete third-party pruner plugin (copy this distribution to start yours)."""

from __future__ import annotations

from typing import Any

import torch

from prunekit.api import SCOPE_OPTION, MaskPruner, Option, Register, Target, hookimpl


class RandomPruner(MaskPruner):
    """Prunes weights at random (a baseline), reproducibly."""

    def __init__(self, targets: list[Target], scope: str = "global", seed: int = 0) -> None:
        super().__init__(targets, scope=scope)
        self.generator = torch.Generator().manual_seed(seed)
        self.scores: list[torch.Tensor] | None = None

    def score(self, index: int, target: Target) -> torch.Tensor:
        if self.scores is None:  # fixed random scores, drawn once
            self.scores = [torch.rand(t.parameter.shape, generator=self.generator) for t in self.targets]
        return self.scores[index].to(target.parameter.device)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        kept = {f"score:{t.name}": s for t, s in zip(self.targets, self.scores or [])}
        return super().state_tensors() | kept  # the ledger counts every byte we keep

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"scores": [s.clone() for s in self.scores or []]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.scores = [s.clone() for s in state["scores"]] or None


@hookimpl
def register_pruners(register: Register) -> None:
    # Options are declared once: the core validates and converts --pruner-opt values and
    # checks that these names and defaults match RandomPruner's parameters.
    register(
        "random-scores",
        RandomPruner,
        description="random unstructured pruning (baseline); 5 B/weight (fp32 score + bool mask)",
        options=(SCOPE_OPTION, Option("seed", int, 0, "seed of the random scores", minimum=0)),
    )
