"""Evaluation of the model on the test split."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from prunekit.core.building import Autocast


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Iterable[Any], device: torch.device, autocast: Autocast) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy in percent over every example of ``loader``."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast():
            logits = model(inputs)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        correct += (logits.argmax(1) == labels).sum()
        count += labels.numel()
    return loss_sum.item() / count, 100.0 * correct.item() / count
