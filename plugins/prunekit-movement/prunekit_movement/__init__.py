"""prunekit plugin: movement pruning (``movement``) and the W*(W-W0) proxy (``movement-w0``)."""

from __future__ import annotations

import math

from prunekit.api import SCOPE_OPTION, Option, Target, UsageError, hookimpl
from prunekit_movement.movement import MovementPruner
from prunekit_movement.w0 import MovementW0Pruner

__all__ = ["MovementPruner", "MovementW0Pruner", "movement", "movement_w0"]

LR_SCORE_OPTION = Option(
    "lr_score",
    float,
    None,
    "score learning rate lr_S (> 0); default: the optimizer's current learning rate, following its schedule",
    above=0.0,
)


def _check_scope(scope: str, owner: str) -> None:
    if scope not in ("global", "layer"):
        raise UsageError(f"Option 'scope' of {owner} must be one of: global, layer; got {scope!r}.")


def movement(targets: list[Target], lr_score: float | None = None, scope: str = "global") -> MovementPruner:
    """Factory of pruner ``movement``; installs the mask parametrizations."""
    _check_scope(scope, "pruner 'movement'")
    if lr_score is not None and not (math.isfinite(lr_score) and lr_score > 0):
        raise UsageError(f"Option 'lr_score' of pruner 'movement' must be a finite number > 0, got {lr_score!r}.")
    return MovementPruner(targets, lr_score=lr_score, scope=scope)


def movement_w0(targets: list[Target], scope: str = "global") -> MovementW0Pruner:
    """Factory of pruner ``movement-w0``."""
    _check_scope(scope, "pruner 'movement-w0'")
    return MovementW0Pruner(targets, scope=scope)


@hookimpl
def register_pruners(register):
    register(
        "movement",
        movement,
        description="Sanh et al. 2020 hard movement: S -= lr_S*grad*W each step, top-k masks, pruned weights can return; 5 B/weight",
        options=(LR_SCORE_OPTION, SCOPE_OPTION),
    )
    register(
        "movement-w0",
        movement_w0,
        description="original AdamWPrune proxy W*(W-W0), masks only grow; 5 B/weight (fp32 W0 + bool mask)",
        options=(SCOPE_OPTION,),
    )
