"""The module training calls: the model, or DDP around it, with channels_last inputs and ``torch.compile``.

``--channels-last`` puts the model's 4-d weights in ``torch.channels_last`` and converts
4-d inputs at the forward call; ``--compile`` wraps the result in ``torch.compile``. Both
leave the parameters the model's own, so pruners mask the same tensors as in eager mode.
A pruner whose mechanism compile cannot take registers with ``compiles=False`` and is
refused (:func:`prunekit.core.run.validation.validate`); every bundled pruner compiles.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ChannelsLastInputs(nn.Module):
    """``module`` with 4-d (NCHW) inputs converted to channels_last before each forward pass."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, inputs: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.module(inputs, *args, **kwargs)


def forward_module(model: nn.Module, wrapped: nn.Module | None, channels_last: bool, compile: bool) -> nn.Module | None:
    """What training calls, or None when that is ``model`` itself; ``wrapped``: DDP around ``model``, if any."""
    forward = wrapped if wrapped is not None else model
    if channels_last:
        forward = ChannelsLastInputs(forward)
    if compile:
        forward = torch.compile(forward)  # type: ignore[assignment]
    return None if forward is model else forward
