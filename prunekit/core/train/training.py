"""One training epoch: the optimizer steps, with gradient masking and scheduled mask updates.

One optimizer step runs the parts of :data:`STEP_ORDER`, in that order (the one
statement of it; tests/test_step_order.py checks :func:`train_epoch` against it).
A mask update therefore always sees the optimizer state exactly as the optimizer
step left it.
A step a ``GradScaler`` skips (inf/NaN gradients: see
:class:`~prunekit.core.train.optim.StepWatch`) is not a step: no step number,
schedule advance, mask update or ``after_step``; the run counts it in ``skipped_steps``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from prunekit.core.data.order import data_generators
from prunekit.core.distributed import ddp as distributed
from prunekit.core.measure.sampling import SamplingThread
from prunekit.core.sparsity.pruner import masks_after_step
from prunekit.core.sparsity.schedule import Schedule
from prunekit.core.train.optim import StepWatch
from prunekit.core.train.parts import Autocast, Built
from prunekit.core.train.preemption import StopRequests

StepCallback = Callable[[int, int], None]

# --8<-- [start:step_order]
#: One optimizer step, in order: (part, what does it). Pruner and TrainingOptimizer
#: methods are named as the core calls them.
STEP_ORDER: tuple[tuple[str, str], ...] = (
    ("forward", "the model's forward pass (under autocast) and the cross-entropy loss"),
    ("optimizer.backward", "backward, scaled and unscaled under a GradScaler"),
    ("pruner.before_step", "gradient masking; the pruner may read gradients"),
    ("optimizer.process_gradients", "the optimizer's gradient processing and clipping (SPAM's moment reset too)"),
    ("optimizer.step", "the optimizer step"),
    ("pruner.update_masks", "the mask update, only when pruner.is_update_step(step) (default: the schedule's update steps)"),
    ("pruner.enforce", "mask enforcement: pruned weights exactly zero again"),
    ("optimizer.after_step", "the optimizer's own end-of-step work"),
)
# --8<-- [end:step_order]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class Progress:
    """Counters and results of a run so far, and the sums of the epoch in progress.

    ``batch`` batches of the current epoch are done; ``epoch_start`` holds the
    data generators' states when it began (a mid-epoch checkpoint saves those,
    so a resumed run sees the same order and skips the batches done).
    """

    step: int = 0
    skipped_steps: int = 0
    mask_updates: int = 0
    train_time: float = 0.0
    eval_time: float = 0.0
    data_wait_time: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_at_epochs: list[int] = field(default_factory=list)
    batch: int = 0
    loss_sum: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    seen: int = 0
    epoch_seconds: float = 0.0
    epoch_data_wait: float = 0.0
    epoch_start: dict[str, torch.Tensor] = field(default_factory=dict)
    training_flops: dict[str, Any] = field(default_factory=dict)  # prunekit.core.measure.flops.TrainingFlops state

    #: Fields a checkpoint keeps in its ``loop`` record (``history`` and ``resumed_at_epochs`` have their own).
    SAVED = (
        "step",
        "skipped_steps",
        "mask_updates",
        "train_time",
        "eval_time",
        "data_wait_time",
        "batch",
        "loss_sum",
        "correct",
        "seen",
        "epoch_seconds",
        "epoch_data_wait",
        "training_flops",
    )

    def loop_state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.SAVED}

    def load_loop_state(self, state: dict[str, Any], device: torch.device) -> None:
        """Take back :meth:`loop_state` (from a checkpoint); ValueError if a value is not of its field's kind."""
        for name in self.SAVED:
            current = getattr(self, name)
            value = state.get(name, current)  # data waiting: absent from older checkpoints
            if isinstance(current, int):
                fits = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            elif isinstance(current, float):
                fits = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            elif isinstance(current, dict):  # a component's own state: it checks its contents
                fits = isinstance(value, dict)
            else:
                fits = value is None or isinstance(value, torch.Tensor)
            if not fits:
                raise ValueError(f"its loop state {name} is {type(value).__name__} {value!r:.40}")
            setattr(self, name, value.to(device) if isinstance(value, torch.Tensor) else value)


@dataclass
class EpochResult:
    """A finished epoch's figures; ``stopped`` when a stop was requested before its end."""

    train_loss: float = math.nan
    train_accuracy: float = math.nan
    lr: float = math.nan
    seconds: float = 0.0
    data_wait: float = 0.0
    stopped: bool = False


def _after_optimizer_step(
    built: Built, schedule: Schedule, prunes: bool, progress: Progress, sampling: SamplingThread, loss: torch.Tensor, step: int
) -> None:
    """After optimizer step ``step`` really ran: the mask update when due, enforcement, the optimizer's ``after_step``."""

    def before_update() -> None:
        if not distributed.all_finite(built.dist, loss):  # scores of NaN weights are meaningless
            raise TrainingDiverged(f"training loss became {loss.item()} at step {step}")
        sampling.set_phase("mask_update")

    if masks_after_step(built.pruner, schedule, step, prunes, before_update):  # the schedule's steps, or the pruner's own cadence
        progress.mask_updates += 1
        sampling.set_phase("train")
    built.optimizer.after_step(step)


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
    stop: StopRequests | None = None,
) -> EpochResult:
    """Train over the training split once (or what is left of it); raise TrainingDiverged on a NaN/inf loss.

    After each step, a pending ``stop`` request (on any rank under torchrun) ends the
    epoch early with ``stopped=True``, its partial sums left in ``progress`` for a checkpoint.
    """
    model, pruner, opt = built.forward_module, built.pruner, built.optimizer
    sampling.set_phase("train")
    model.train()
    start = time.perf_counter()
    if progress.batch == 0:  # a new epoch (not one resumed part-way)
        progress.epoch_start = {name: g.get_state() for name, g in data_generators(built.train_loader).items()}
        progress.loss_sum = torch.zeros((), device=device)
        progress.correct = torch.zeros((), device=device, dtype=torch.long)
        progress.seen = 0
        progress.epoch_seconds = 0.0
        progress.epoch_data_wait = 0.0
    loss_sum, correct = progress.loss_sum, progress.correct
    assert loss_sum is not None and correct is not None
    waited = 0.0  # time the step loop spends waiting for the next batch (loading, augmenting, copying)
    batches = iter(built.train_loader)
    steps_run = StepWatch(opt)
    try:
        while True:
            asked = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            inputs = batch[0].to(device, non_blocking=True)
            labels = batch[1].to(device, non_blocking=True)
            waited += time.perf_counter() - asked
            opt.optimizer.zero_grad(set_to_none=True)
            with autocast():
                logits = model(inputs)
                loss = F.cross_entropy(logits.float(), labels)
            opt.backward(loss)
            step = progress.step + 1
            sampling.step = step
            pruner.before_step(step)
            opt.process_gradients(step)
            if steps_run.step(opt):
                progress.step = step
                _after_optimizer_step(built, schedule, prunes, progress, sampling, loss, step)
            else:  # a GradScaler skipped it (inf/NaN gradients): not a step, no schedule advance or mask update
                progress.skipped_steps += 1
            loss_sum += loss.detach() * labels.numel()
            correct += (logits.detach().argmax(1) == labels).sum()
            progress.seen += labels.numel()
            progress.batch += 1
            if on_step is not None:
                on_step(progress.step, total_steps)
            if stop is not None and stop.agreed(built.dist):  # every rank stops after the same step
                break
    finally:
        steps_run.remove()
    seconds = time.perf_counter() - start
    progress.train_time += seconds
    progress.epoch_seconds += seconds
    progress.data_wait_time += waited
    progress.epoch_data_wait += waited
    if stop is not None and stop.stopping and progress.batch < len(built.train_loader):
        return EpochResult(seconds=progress.epoch_seconds, data_wait=progress.epoch_data_wait, stopped=True)
    progress.batch = 0
    counted = torch.tensor(progress.seen, device=device)
    distributed.all_reduce_sum(built.dist, loss_sum, correct, counted)  # every rank's examples
    seen = int(counted.item())
    train_loss = loss_sum.item() / seen
    if not math.isfinite(train_loss):
        raise TrainingDiverged(f"training loss became {train_loss} in epoch {len(progress.history) + 1}")
    return EpochResult(train_loss, 100.0 * correct.item() / seen, opt.lr, progress.epoch_seconds, progress.epoch_data_wait)
