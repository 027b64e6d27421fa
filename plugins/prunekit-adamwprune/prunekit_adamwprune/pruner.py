"""The ``state`` pruner: boolean masks scored from the optimizer's Adam moments.

Everything else (exact memory-bounded global threshold, layer scope, masks that
only grow, gradient masking, zeroing ``exp_avg``/``exp_avg_sq``/``max_exp_avg_sq``
at pruned positions, mask storage) is :class:`prunekit.core.sparsity.pruner.MaskPruner`'s. The only
state kept between steps is the masks: 1 B (``mask_storage=bool``), 0.125 B (``bits``)
or 0 B (``implicit``) per prunable weight.
"""

from __future__ import annotations

import torch

from prunekit.api import (
    MASK_STORAGE_OPTION,
    SCOPE_OPTION,
    STRUCTURE_OPTION,
    MaskPruner,
    Option,
    Target,
    UsageError,
    dense_state,
)
from prunekit_adamwprune.scores import DEFAULT_VARIANT, VARIANTS

VARIANT_OPTION = Option(
    "variant",
    str,
    DEFAULT_VARIANT,
    "bitter7 |w|*(|v|+eps)^(1/4); bitter0 |w*m|*|w|/(sqrt(v)+eps); bitter3 |w|*sqrt(|m|+eps); fisher w^2*v",
    choices=tuple(VARIANTS),
)
EPS_OPTION = Option("eps", float, 1e-8, "epsilon inside the score (must be > 0)", above=0.0)
OPTIONS = (VARIANT_OPTION, SCOPE_OPTION, EPS_OPTION, MASK_STORAGE_OPTION, STRUCTURE_OPTION)


class StatePruner(MaskPruner):
    """Prune the weights with the lowest score from ``w`` and Adam's ``m``/``v``.

    Until the optimizer holds state for a weight (before its first step) the
    score of that weight is ``|w|``. With ``state_storage=compact`` the moments
    are read into a dense copy (zero at pruned weights, as dense storage holds them),
    one layer at a time.
    """

    fresh_scores = True  # every variant returns a new tensor (see scores.py)

    def __init__(
        self,
        targets: list[Target],
        variant: str = DEFAULT_VARIANT,
        scope: str = "global",
        eps: float = 1e-8,
        mask_storage: str = "bool",
        structure: str = "unstructured",
    ) -> None:
        super().__init__(targets, scope=scope, mask_storage=mask_storage)
        self.set_structure(structure)
        self.variant = variant
        self.eps = eps
        self._score, self._needs = VARIANTS[variant]

    def score(self, index: int, target: Target) -> torch.Tensor:
        w = target.parameter.detach()
        state = self.optimizer.state.get(target.parameter) if self.optimizer is not None else None
        if not state:
            return w.abs()
        found = {}
        for key in self._needs:
            value = dense_state(self.optimizer, target.parameter, key)  # compact state: a dense copy
            if value is None:
                raise UsageError(
                    f"Pruner 'state' (variant {self.variant}) needs the optimizer's per-weight "
                    f"'{key}' for {target.name}; this optimizer keeps: {', '.join(sorted(state)) or 'nothing'}."
                )
            found[key] = value.detach()
        return self._score(w, found.get("exp_avg"), found.get("exp_avg_sq"), self.eps)


#: The factory registered as pruner ``state``: the core validates the declared options first.
state = StatePruner
