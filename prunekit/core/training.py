"""One training epoch: the optimizer steps, with gradient masking and scheduled mask updates.

One optimizer step runs: forward, loss, backward, gradient masking
(``pruner.before_step``), the optimizer's gradient processing and clipping, the
optimizer step, the optimizer's ``after_step``, the mask update when
``pruner.is_update_step(step)`` (by default the schedule's update steps), and
mask enforcement.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from prunekit.core import distributed
from prunekit.core.building import Autocast, Built
from prunekit.core.sampling import SamplingThread
from prunekit.core.schedule import Schedule

StepCallback = Callable[[int, int], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class Progress:
    """Counters and results of a run so far."""

    step: int = 0
    mask_updates: int = 0
    train_time: float = 0.0
    eval_time: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EpochResult:
    train_loss: float
    train_accuracy: float
    lr: float
    seconds: float


def train_epoch(
    built: Built,
    schedule: Schedule,
    prunes: bool,
    progress: Progress,
    sampling: SamplingThread,
    device: torch.device,
    autocast: Autocast,
    total_steps: int,
    on_step: StepCallback | None = None,
) -> EpochResult:
    """Train over the whole training split once; raise TrainingDiverged on a NaN/inf loss."""
    model, pruner, opt = built.forward_module, built.pruner, built.optimizer
    sampling.set_phase("train")
    model.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for inputs, labels in built.train_loader:
        inputs = inputs.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        opt.optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = model(inputs)
            loss = F.cross_entropy(logits.float(), labels)
        opt.backward(loss)
        progress.step += 1
        step = progress.step
        sampling.step = step
        pruner.before_step(step)
        opt.process_gradients(step)
        opt.step()
        opt.after_step(step)
        if prunes and pruner.is_update_step(step):  # the schedule's steps, or the pruner's own cadence
            if not distributed.all_finite(built.dist, loss):  # scores of NaN weights are meaningless
                raise TrainingDiverged(f"training loss became {loss.item()} at step {step}")
            sampling.set_phase("mask_update")
            pruner.update_masks(schedule.sparsity_at(step), step)
            progress.mask_updates += 1
            sampling.set_phase("train")
        pruner.enforce()
        loss_sum += loss.detach() * labels.numel()
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += labels.numel()
        if on_step is not None:
            on_step(step, total_steps)
    counted = torch.tensor(seen, device=device)
    distributed.all_reduce_sum(built.dist, loss_sum, correct, counted)  # every rank's examples
    seen = int(counted.item())
    train_loss = loss_sum.item() / seen
    if not math.isfinite(train_loss):
        raise TrainingDiverged(f"training loss became {train_loss} in epoch {len(progress.history) + 1}")
    seconds = time.perf_counter() - start
    progress.train_time += seconds
    return EpochResult(train_loss, 100.0 * correct.item() / seen, opt.lr, seconds)
