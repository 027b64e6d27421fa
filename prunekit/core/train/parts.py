"""What the training step and the test pass work on: the built run (:class:`Built`) and the
autocast context of its forward passes (:data:`Autocast`); :mod:`prunekit.core.run.building` makes them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from prunekit.core.distributed.ddp import SINGLE, Dist
from prunekit.core.sparsity.pruner import Pruner
from prunekit.core.sparsity.targets import Target
from prunekit.core.train.optim import TrainingOptimizer

Autocast = Callable[[], AbstractContextManager[Any]]


@dataclass
class Built:
    """The objects of one run, built in the order the pruner protocol promises."""

    splits: Any
    model: torch.nn.Module
    targets: list[Target]
    pruner: Pruner
    optimizer: TrainingOptimizer
    train_loader: Any
    test_loader: Any
    dist: Dist = SINGLE
    trainer: torch.nn.Module | None = None  # what training calls: the DDP wrapper on several ranks

    @property
    def forward_module(self) -> torch.nn.Module:
        return self.trainer if self.trainer is not None else self.model
