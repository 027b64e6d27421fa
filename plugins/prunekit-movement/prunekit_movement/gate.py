"""A straight-through mask installed as a parametrization of a prunable weight.

After :func:`install_gate`, ``module.weight`` (what the forward pass uses) is
``W * mask`` while the trainable ``Target.parameter`` stays the dense, retained
``W``. The backward pass is the straight-through estimate: the gradient of the
masked weight ``dL/d(W * mask)`` reaches ``W.grad`` at every position, pruned
ones included, so a pruner can read it before masking it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import FunctionCtx
from torch.nn.utils import parametrize

from prunekit.api import Target


class _StraightThroughMask(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return weight * mask

    @staticmethod
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class MaskGate(nn.Module):
    """Parametrization ``W -> W * mask``; dense (identity) while ``mask`` is None.

    ``mask`` is a plain attribute, not a buffer: the pruner owns it (and reports
    it in ``state_tensors()``), so the model's ``state_dict`` and ``buffers()``
    do not hold a second reference.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mask: torch.Tensor | None = None

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return weight
        masked: torch.Tensor = _StraightThroughMask.apply(weight, self.mask)
        return masked


def install_gate(target: Target) -> MaskGate:
    """Parametrize ``target``'s weight with a fresh :class:`MaskGate` and return it."""
    if parametrize.is_parametrized(target.module, target.attr):
        raise ValueError(f"{target.name} is already parametrized; movement pruning needs the dense weight")
    gate = MaskGate()
    parametrize.register_parametrization(target.module, target.attr, gate)
    return gate
