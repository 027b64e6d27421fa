"""The prunable set and the sparsity the forward pass actually sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)


@dataclass(frozen=True)
class Target:
    """One prunable weight: ``getattr(module, attr)`` of a conv or linear layer."""

    name: str
    module: nn.Module
    attr: str = "weight"

    @property
    def weight(self) -> torch.Tensor:
        """The tensor the forward pass uses (after any parametrization)."""
        weight: torch.Tensor = getattr(self.module, self.attr)
        return weight

    @property
    def parameter(self) -> nn.Parameter:
        """The trainable tensor the optimizer updates."""
        owner: Any = self.module
        if parametrize.is_parametrized(self.module, self.attr):
            owner = owner.parametrizations[self.attr]
            original: nn.Parameter = owner.original
            return original
        parameter: nn.Parameter = getattr(owner, self.attr)
        return parameter

    def numel(self) -> int:
        return self.parameter.numel()


def prunable_targets(model: nn.Module) -> list[Target]:
    """The ``.weight`` of every convolution and linear layer, in module order."""
    return [
        Target(f"{name}.weight" if name else "weight", module)
        for name, module in model.named_modules()
        if isinstance(module, PRUNABLE_TYPES) and getattr(module, "weight", None) is not None
    ]


@torch.no_grad()
def measure_sparsity(model: nn.Module, targets: list[Target]) -> dict[str, float | int]:
    """Exact zeros among the weights the forward pass uses.

    Returns zeros and totals over the prunable weights and over all parameters
    (where a prunable weight counts by its effective, forward-pass value).
    """
    prunable_zeros = prunable_total = 0
    covered: set[int] = set()
    for target in targets:
        weight = target.weight
        prunable_zeros += int(weight.numel() - torch.count_nonzero(weight).item())
        prunable_total += weight.numel()
        covered.add(id(target.parameter))
    other_zeros = other_total = 0
    for param in model.parameters():
        if id(param) in covered:
            continue
        other_zeros += int(param.numel() - torch.count_nonzero(param).item())
        other_total += param.numel()
    all_total = prunable_total + other_total
    return {
        "prunable_zeros": prunable_zeros,
        "prunable_total": prunable_total,
        "prunable": prunable_zeros / prunable_total if prunable_total else 0.0,
        "all_zeros": prunable_zeros + other_zeros,
        "all_total": all_total,
        "all": (prunable_zeros + other_zeros) / all_total if all_total else 0.0,
    }
