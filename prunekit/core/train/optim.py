"""What an optimizer plugin returns, and the parameter groups the core builds."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunekit.core.sparsity.compact_state import compact_state


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decay for weights, none for biases and norm parameters (ndim <= 1)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


class TrainingOptimizer:
    """A torch optimizer plus the per-step and per-epoch work that goes with it.

    The core calls :meth:`backward`, :meth:`process_gradients`, :meth:`step` and
    :meth:`after_step` in each optimizer step, where
    :data:`prunekit.core.train.training.STEP_ORDER` puts them, and :meth:`end_epoch`
    once per epoch. Subclass to add gradient clipping, spike handling or schedules.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        max_grad_norm: float | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.max_grad_norm = max_grad_norm
        #: ``torch.amp.GradScaler`` under fp16 mixed precision (set by the core), else None.
        self.scaler: torch.amp.GradScaler | None = None

    def backward(self, loss: torch.Tensor) -> None:
        """Backward pass; under a GradScaler, scaled, then unscaled so gradients are true values."""
        if self.scaler is None:
            loss.backward()  # type: ignore[no-untyped-call]
            return
        self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        self.scaler.unscale_(self.optimizer)

    def parameters(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def process_gradients(self, step: int) -> None:
        """Clip the global gradient norm when ``max_grad_norm`` is set (0 or None: off)."""
        if self.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.max_grad_norm)

    def step(self) -> None:
        """The optimizer step; a GradScaler skips it when gradients are not finite."""
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()

    def after_step(self, step: int) -> None:
        """Called at the end of every step, after the mask update and enforcement."""

    def end_epoch(self, epoch: int) -> None:
        if self.scheduler is not None:
            self.scheduler.step()

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        """Everything that shapes later steps: the torch optimizer, the scheduler and :meth:`extra_state`."""
        out = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "extra": self.extra_state(),
        }
        compact = compact_state(self.optimizer)
        if compact is not None:  # state_storage=compact: the live positions of the compacted moments
            out["compact_positions"] = compact.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (on the parameters' devices)."""
        self.optimizer.load_state_dict(state["optimizer"])
        compact = compact_state(self.optimizer)
        if (compact is None) != ("compact_positions" not in state):
            raise ValueError("the saved optimizer state and this optimizer disagree on state_storage")
        if compact is not None:
            compact.load_state_dict(state["compact_positions"])
        if (state.get("scheduler") is None) != (self.scheduler is None):
            raise ValueError("the saved optimizer state and this optimizer disagree on having a scheduler")
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.load_extra_state(state.get("extra") or {})

    def extra_state(self) -> dict[str, Any]:
        """A subclass's own state kept between steps (counters, histories): plain data and tensors."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""


class StepWatch:
    """Whether each optimizer step really ran.

    Not when the torch optimizer's ``step()`` was never called (a step post-hook
    counts the calls: a ``GradScaler`` skips it on inf/NaN gradients), nor when the
    ``GradScaler``'s scale backed off in ``update()``: it found inf/NaN gradients,
    and a fused optimizer, which it calls regardless, skipped the update itself.
    """

    def __init__(self, optimizer: TrainingOptimizer) -> None:
        self.scaler = optimizer.scaler
        self.scale = self.scaler.get_scale() if self.scaler is not None else 0.0
        self.count = 0
        self._handle = optimizer.optimizer.register_step_post_hook(self._called)

    def _called(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.count += 1

    def step(self, optimizer: TrainingOptimizer) -> bool:
        """``optimizer.step()``; whether it ran."""
        calls = self.count
        optimizer.step()
        if self.count == calls:
            return False
        if self.scaler is None:
            return True
        scale, self.scale = self.scale, self.scaler.get_scale()
        return self.scale >= scale

    def remove(self) -> None:
        self._handle.remove()
