"""prunekit plugin: movement pruning (``movement``) and the W*(W-W0) proxy (``movement-w0``)."""

from __future__ import annotations

from prunekit.api import MASK_STORAGE_OPTION, SCOPE_OPTION, STRUCTURE_OPTION, Option, Register, hookimpl
from prunekit_movement.movement import MovementPruner
from prunekit_movement.w0 import MovementW0Pruner

__all__ = ["MovementPruner", "MovementW0Pruner", "movement", "movement_w0"]

#: Movement scores need training steps: at step 0 (the constant schedule) they are all zero.
RAMPS = ("gmp", "cubic", "linear")

LR_SCORE_OPTION = Option(
    "lr_score",
    float,
    None,
    "score learning rate lr_S (> 0); default: the optimizer's current learning rate, following its schedule",
    above=0.0,
)


#: The registered factories are the classes: the core validates the declared options first.
movement = MovementPruner
movement_w0 = MovementW0Pruner


@hookimpl
def register_pruners(register: Register) -> None:
    register(
        "movement",
        movement,
        description="Sanh et al. 2020 hard movement: S -= lr_S*grad*W each step, top-k masks, pruned weights can return; 5 B/weight",
        options=(LR_SCORE_OPTION, SCOPE_OPTION),
        schedules=RAMPS,
    )
    register(
        "movement-w0",
        movement_w0,
        description="original AdamWPrune proxy W*(W-W0), masks only grow; 5 B/weight (fp32 W0 + bool mask; 4 B with mask_storage=implicit)",
        options=(SCOPE_OPTION, MASK_STORAGE_OPTION, STRUCTURE_OPTION),
        schedules=RAMPS,
    )
