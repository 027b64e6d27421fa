"""Evaluation of the model on the test split."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from prunekit.core.distributed import ddp as distributed
from prunekit.core.distributed.ddp import SINGLE, Dist
from prunekit.core.train.parts import Autocast


@dataclass
class Evaluation:
    """Mean loss, accuracy in percent, and per test example (loader order, on the CPU) right or not and its label."""

    loss: float
    accuracy: float
    correct: torch.Tensor
    labels: torch.Tensor


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, loader: Iterable[Any], device: torch.device, autocast: Autocast, dist: Dist = SINGLE
) -> Evaluation:
    """Score ``model`` on every example of ``loader``; under DDP, on every rank's disjoint shard
    (rank r holds examples r, r+N, ...), reduced so each test example counts exactly once."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    hits: list[torch.Tensor] = []
    seen: list[torch.Tensor] = []
    for inputs, labels in loader:
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast():
            logits = model(inputs)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        hits.append(logits.argmax(1) == labels)
        seen.append(labels)
    correct, labels = torch.cat(hits).cpu(), torch.cat(seen).cpu()
    if dist.enabled:  # the whole test split, in its own order
        distributed.all_reduce_sum(dist, loss_sum)
        correct, labels = distributed.interleave(dist, correct), distributed.interleave(dist, labels)
    count = correct.numel()
    return Evaluation(loss_sum.item() / count, 100.0 * correct.sum().item() / count, correct, labels)
