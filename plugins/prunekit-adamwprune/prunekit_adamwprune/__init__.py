"""prunekit plugin: pruner ``state`` (scores from Adam's moments) and optimizer ``adamwprune``."""

from __future__ import annotations

from prunekit.api import STATE_STORAGE_OPTION, Register, hookimpl
from prunekit_adamwprune.optimizer import STATE, adamwprune
from prunekit_adamwprune.pruner import OPTIONS, StatePruner, state

__version__ = "0.1.0"
__all__ = ["StatePruner", "adamwprune", "state"]


@hookimpl
def register_pruners(register: Register) -> None:
    register(
        "state",
        state,
        description="prune by Adam's moments (default bitter7: |w|*(|v|+eps)^(1/4)); masks of 1, 0.125 or 0 B per weight (mask_storage), exact global threshold",
        options=OPTIONS,
        requires=("exp_avg", "exp_avg_sq"),
    )


@hookimpl
def register_optimizers(register: Register) -> None:
    register(
        "adamwprune",
        adamwprune,
        description="AdamW (betas 0.9/0.999, eps 1e-8, decoupled decay on weights only); default pruner: state",
        options=(STATE_STORAGE_OPTION,),
        lr=1e-3,
        state=STATE,
        default_pruner="state",
    )
