"""A pruner plugin in ten lines (tests/test_docs.py runs it; the README shows it verbatim)."""

import torch

from prunekit.api import MASK_STORAGE_OPTION, SCOPE_OPTION, STRUCTURE_OPTION, MaskPruner, Register, Target, hookimpl


class LayerNormalisedMagnitude(MaskPruner):
    """|w| over its layer's mean |w|: one global threshold then treats every layer alike."""

    def score(self, index: int, target: Target) -> torch.Tensor:
        w = target.parameter.detach().abs()
        return w / w.mean().clamp_min(1e-12)  # MaskPruner does the rest: masks, threshold, ledger, checkpoints


@hookimpl
def register_pruners(register: Register) -> None:
    register("normalised-magnitude", LayerNormalisedMagnitude, options=(SCOPE_OPTION, MASK_STORAGE_OPTION, STRUCTURE_OPTION))
