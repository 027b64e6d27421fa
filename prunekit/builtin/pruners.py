"""Built-in pruners: ``none`` (dense) and ``magnitude`` (|w|, boolean masks)."""

from __future__ import annotations

import torch

from prunekit import hookimpl
from prunekit.core.pruner import SCOPE_OPTION, MaskPruner, Pruner
from prunekit.core.targets import Target


class MagnitudePruner(MaskPruner):
    """Prune the smallest |w|; state is one boolean mask byte per prunable weight."""

    fresh_scores = True  # |w| is a new tensor each time

    def score(self, index: int, target: Target) -> torch.Tensor:
        return target.parameter.detach().abs()


def none(targets: list[Target]) -> Pruner:
    return Pruner(targets)


def magnitude(targets: list[Target], scope: str = "global") -> MagnitudePruner:
    return MagnitudePruner(targets, scope=scope)


@hookimpl
def register_pruners(register):
    register("none", none, description="no pruning (dense baseline)", dense=True)
    register("magnitude", magnitude, description="smallest |w| pruned on the schedule; 1-byte masks", options=(SCOPE_OPTION,))
