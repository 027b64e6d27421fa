"""``prunekit`` with the faults and placements ``gpu_check.py`` asks for, set by environment variables.

    python benchmarks/_gpu_child.py run ...   # as ``python -m prunekit.cli run ...``

- ``GPU_CHECK_FP16=1``: mixed precision takes fp16 with a GradScaler even where bf16 is supported.
- ``GPU_CHECK_OVERFLOW_AT=N``: the backward pass of the N-th training loss (1-based) yields infinite
  gradients (the loss itself stays finite), as an fp16 overflow does: GradScaler must skip that step.
- ``GPU_CHECK_HOST_DATA=1``: in-memory data stays in (pinned) host memory instead of on the device.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
import torch.nn.functional as F


class _InfiniteGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, loss: torch.Tensor) -> torch.Tensor:
        return loss.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * float("inf")


def _overflow_at(n: int) -> None:
    original = F.cross_entropy
    calls = {"train": 0}

    def cross_entropy(*args: Any, **kwargs: Any) -> torch.Tensor:
        loss = original(*args, **kwargs)
        if not torch.is_grad_enabled():  # evaluation
            return loss
        calls["train"] += 1
        return _InfiniteGradient.apply(loss) if calls["train"] == n else loss

    F.cross_entropy = cross_entropy


def _host_data() -> None:
    """Every prunekit module's ``fits_on`` (whatever module now owns it) answers False for a GPU."""
    import prunekit.cli  # noqa: F401 - loads the core

    for name, module in list(sys.modules.items()):
        fits_on = getattr(module, "fits_on", None) if name.startswith("prunekit") else None
        if callable(fits_on):
            module.fits_on = lambda device, nbytes: device.type == "cpu"  # type: ignore[attr-defined]


def main() -> None:
    if os.environ.get("GPU_CHECK_FP16") == "1":
        torch.cuda.is_bf16_supported = lambda *args, **kwargs: False  # type: ignore[assignment]
    if n := int(os.environ.get("GPU_CHECK_OVERFLOW_AT", "0")):
        _overflow_at(n)
    if os.environ.get("GPU_CHECK_HOST_DATA") == "1":
        _host_data()
    from prunekit.cli import main as prunekit_main

    prunekit_main(sys.argv[1:])


if __name__ == "__main__":
    main()
