"""Built-in pruners: ``none`` (dense) and ``magnitude`` (|w|, masks stored as ``mask_storage`` says)."""

from __future__ import annotations

import torch

from prunekit.api import MASK_STORAGE_OPTION, SCOPE_OPTION, STRUCTURE_OPTION, MaskPruner, Pruner, Register, Target, hookimpl


class MagnitudePruner(MaskPruner):
    """Prune the smallest |w|; state is the masks (1, 0.125 or 0 B per prunable weight: ``mask_storage``)."""

    fresh_scores = True  # |w| is a new tensor each time

    def score(self, index: int, target: Target) -> torch.Tensor:
        return target.parameter.detach().abs()


def none(targets: list[Target]) -> Pruner:
    return Pruner(targets)


def magnitude(
    targets: list[Target], scope: str = "global", mask_storage: str = "bool", structure: str = "unstructured"
) -> MagnitudePruner:
    pruner = MagnitudePruner(targets, scope=scope, mask_storage=mask_storage)
    pruner.set_structure(structure)
    return pruner


@hookimpl
def register_pruners(register: Register) -> None:
    register("none", none, description="no pruning (dense baseline)", dense=True)
    register(
        "magnitude",
        magnitude,
        description="smallest |w| pruned on the schedule; masks of 1, 0.125 or 0 B per weight (mask_storage)",
        options=(SCOPE_OPTION, MASK_STORAGE_OPTION, STRUCTURE_OPTION),
    )
