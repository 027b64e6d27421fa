"""The ``adamwprune`` optimizer: AdamW with the seed's settings, paired with ``state``."""

from __future__ import annotations

from typing import Any

import torch

from prunekit.api import with_state_storage

#: Per-weight state it keeps (what the ``state`` pruner reads).
STATE = ("exp_avg", "exp_avg_sq")


def adamwprune(
    param_groups: list[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    steps_per_epoch: int,
    state_storage: str = "dense",
) -> torch.optim.AdamW:
    """AdamW, betas (0.9, 0.999), eps 1e-8, no AMSGrad.

    Decoupled weight decay comes from the two parameter groups the core builds
    (weights decay, biases and norm parameters do not). The fused kernel is
    used where torch supports it for these parameters: the same update, about
    5x faster on CPU, and unlike the default multi-tensor path its square root
    does not slow down on the exact zeros that pruning leaves in ``exp_avg_sq``.
    ``state_storage=compact`` keeps the moments of live weights only (``prunekit.api.with_state_storage``).
    """
    kwargs: dict[str, Any] = dict(lr=lr, betas=(0.9, 0.999), eps=1e-8, amsgrad=False)
    try:
        opt = torch.optim.AdamW(param_groups, fused=True, **kwargs)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        opt = torch.optim.AdamW(param_groups, **kwargs)
    return with_state_storage(opt, state_storage)
