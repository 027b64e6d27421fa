"""prunekit plugin: sparse training from step 0 and pruning at initialisation.

Pruners ``rigl`` (Evci et al. 2020), ``set`` (Mocanu et al. 2018), ``snip``
(Lee et al. 2019) and ``random``; all use the ``constant`` schedule (the target
sparsity from step 0) and keep one ``torch.bool`` mask per prunable weight.
"""

from __future__ import annotations

from prunekit.api import DISTRIBUTIONS, Option, Register, Target, hookimpl
from prunekit_dst.dynamic import DynamicSparsePruner, RigLPruner, SETPruner
from prunekit_dst.random_mask import RandomPruner
from prunekit_dst.snip import SnipPruner

__version__ = "0.1.0"
__all__ = ["DynamicSparsePruner", "RandomPruner", "RigLPruner", "SETPruner", "SnipPruner", "random", "rigl", "set_", "snip"]

PER_LAYER = ("layer", "uniform", "erk")
# SNIP's zero sensitivities (dead units) tie; the core breaks ties exactly by position, so every scope works.
SNIP_SCOPES = DISTRIBUTIONS


def _scope(default: str, choices: tuple[str, ...]) -> Option:
    return Option(
        "scope",
        str,
        default,
        "layer: every layer at the target; uniform: every layer at the target but the first, kept dense (RigL's uniform); "
        "erk: Erdős–Rényi-Kernel per-layer sparsities"
        + ("; global: one threshold over all layers" if "global" in choices else ""),
        choices=choices,
    )


SEED_OPTION = Option("seed", int, None, "seed of the random choices; default: drawn from the run's --seed", minimum=0)
DYNAMIC_OPTIONS = (
    _scope("erk", PER_LAYER),
    Option("delta_t", int, 100, "optimizer steps between topology updates", minimum=1),
    Option(
        "alpha",
        float,
        0.3,
        "initial fraction of each layer's active weights dropped (and regrown) per update",
        minimum=0.0,
        maximum=1.0,
    ),
    Option("end_fraction", float, 0.75, "fraction of training after which the topology stays fixed", above=0.0, maximum=1.0),
    Option(
        "decay",
        str,
        "cosine",
        "drop fraction schedule: cosine-decayed to 0 at end_fraction, or constant",
        choices=("cosine", "constant"),
    ),
    SEED_OPTION,
)

SET_VARIANT_OPTION = Option(
    "variant",
    str,
    "magnitude",
    "magnitude: drop the smallest |w| over all active weights, grow at zero (as RigL's code); "
    "mocanu: Mocanu et al. 2018, drop that fraction of the positive and of the negative weights closest to zero "
    "separately, grow at random values N(0, 0.1^2)",
    choices=("magnitude", "mocanu"),
)


def random(targets: list[Target], scope: str = "erk", seed: int | None = None) -> RandomPruner:
    """Factory of pruner ``random`` (ERK by default, as RigL's static baseline)."""
    return RandomPruner(targets, scope, seed)


# The classes are the factories of rigl, set and snip: their parameters are the declared options.
rigl = RigLPruner
set_ = SETPruner
snip = SnipPruner


@hookimpl
def register_pruners(register: Register) -> None:
    constant = ("constant",)
    register(
        "rigl",
        rigl,
        description="RigL (Evci et al. 2020): constant sparsity, drop smallest |w| / grow largest |dense grad| every delta_t steps; 1 B/weight",
        options=DYNAMIC_OPTIONS,
        schedules=constant,
    )
    register(
        "set",
        set_,
        description="SET (Mocanu et al. 2018): constant sparsity, drop smallest |w| / grow at random every delta_t steps; 1 B/weight",
        options=DYNAMIC_OPTIONS + (SET_VARIANT_OPTION,),
        schedules=constant,
    )
    register(
        "snip",
        snip,
        description="SNIP (Lee et al. 2019): masks once from |w*g| on the first batch(es), then fixed; 1 B/weight",
        options=(
            _scope("global", SNIP_SCOPES),
            Option("batches", int, 1, "first training batches whose sensitivities |sum w*g| choose the masks", minimum=1),
        ),
        schedules=constant,
    )
    register(
        "random",
        random,
        description="fixed random mask at the target from step 0 (baseline); 1 B/weight",
        options=(_scope("erk", DISTRIBUTIONS), SEED_OPTION),
        schedules=constant,
    )
