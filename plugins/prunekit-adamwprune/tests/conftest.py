"""Shared fixtures: a tiny conv+linear model with real Adam state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.testing import parameter_groups, prunable_targets


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(4 * 6 * 6, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm(self.conv(x)))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def batch(seed: int, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int = 0) -> None:
    """A few real AdamW steps so every weight has exp_avg/exp_avg_sq."""
    for i in range(steps):
        x, y = batch(seed + i)
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


@pytest.fixture
def tiny():
    """The tiny model class (conv, batch norm, two linears; 8x8 inputs)."""
    return Tiny


@pytest.fixture
def make_batch():
    """``make_batch(seed, n=16)`` -> (inputs, labels) for :class:`Tiny`."""
    return batch


@pytest.fixture
def steps():
    """``steps(model, optimizer, n, seed)``: n real optimizer steps on random batches."""
    return train_steps


@pytest.fixture
def trained():
    """(model, targets, AdamW optimizer) after three real steps."""
    torch.manual_seed(0)
    model = Tiny()
    opt = torch.optim.AdamW(parameter_groups(model, 1e-2), lr=1e-2)
    train_steps(model, opt, 3)
    return model, prunable_targets(model), opt
