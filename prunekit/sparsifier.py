"""prunekit's pruners in your own training loop: :class:`Sparsifier`.

Built from your model and optimizer and the same names and options as ``prunekit run``
(resolved through the same registry and validation: a wrong name is the same one-line
:class:`~prunekit.errors.UsageError`). By default it hooks into the optimizer
(``register_step_pre_hook``/``register_step_post_hook``), so ``optimizer.step()`` does
both halves of the pruner protocol: just before the step, gradients are masked (and read
by pruners that score them); just after it, the scheduled mask update and enforcement
(:func:`prunekit.core.sparsity.pruner.masks_after_step`, the order ``prunekit run`` uses).
Hooks, because only a step that really runs fires them: a ``GradScaler`` that skips the
step for inf/NaN gradients never calls ``optimizer.step()``, and gradient-accumulation
micro-batches do not either, so neither advances the schedule. A fused optimizer
(``fused=True``) is the exception: the scaler calls its step regardless, with the
overflow flag as ``optimizer.found_inf`` and the gradients still scaled, and the kernel
unscales them and skips the update itself. So the pre-hook unscales them first (pruners
read true gradients; after the step they stay unscaled) and skips pruning on an overflow,
and the post-hook does not count that step (reading the flag: two device-to-host copies per
step). fp16 gradients are refused there in one line: unscaling them in fp16 would lose the
small ones. With ``attach=False`` (Lightning's callback) call ``scaler.unscale_(optimizer)``
before :meth:`before_step`, as the callback does for a fused optimizer. A loop whose
``optimizer.step(closure)`` runs backward inside the step (Lightning, LBFGS) passes
``attach=False`` and calls :meth:`before_step` after backward and :meth:`after_step`
after the step; the post-hook still tells which steps really ran.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.core.config.settings import RunConfig
from prunekit.core.measure.ledger import memory_ledger
from prunekit.core.plugins.loading import Plugins, get_plugins
from prunekit.core.run.building import make_schedule
from prunekit.core.run.validation import validate
from prunekit.core.sparsity.pruner import TrainingPlan, masks_after_step, masks_before_training
from prunekit.core.sparsity.targets import measure_sparsity
from prunekit.errors import UsageError
from prunekit.own_run import OwnRun
from prunekit.selection import Selection, select_targets, unwrap

#: Bumped when :meth:`Sparsifier.state_dict`'s layout changes.
STATE_FORMAT = 1


def torch_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's ``AcceleratedOptimizer`` or Lightning's ``LightningOptimizer``."""
    for _ in range(8):
        inner = getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer) or inner is optimizer:
            break
        optimizer = inner
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise UsageError(f"Sparsifier needs a torch.optim.Optimizer, got {type(optimizer).__name__}.")
    return optimizer


def skipped_inside(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the step that just ran was one a fused optimizer skipped for a GradScaler's inf/NaN gradients.

    ``GradScaler.step`` sets ``found_inf`` on an optimizer that scales itself
    (``_step_supports_amp_scaling``: torch's fused Adam family) for the length of its step.
    """
    found_inf = getattr(optimizer, "found_inf", None)
    return isinstance(found_inf, torch.Tensor) and bool(found_inf.item())


@torch.no_grad()
def unscale_inside(optimizer: torch.optim.Optimizer) -> None:
    """Inside the step of an optimizer that scales itself: divide its gradients by the GradScaler's scale now.

    And clear ``grad_scale`` so its kernel does not divide them again (the same division, done once).
    """
    scale = getattr(optimizer, "grad_scale", None)
    if not isinstance(scale, torch.Tensor):
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if any(g.dtype == torch.float16 for g in grads):  # the kernel divides in float32; in fp16 small gradients vanish
        raise UsageError(
            "Sparsifier: fp16 gradients under a GradScaler with a fused optimizer cannot be unscaled exactly "
            "before the step; keep float32 weights and train under torch.autocast instead."
        )
    for grad in grads:
        grad.div_(scale.to(grad.device))  # float32 or bfloat16: a power-of-two scale divides exactly
    optimizer.grad_scale = None  # type: ignore[attr-defined]


class Sparsifier:
    """Prune ``model`` while your loop trains it with ``optimizer`` (see the module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: Any,
        *,
        total_steps: int,
        pruner: str = "magnitude",
        sparsity: float = 0.5,
        schedule: str | None = None,
        warmup: int | None = None,
        prune_end: int | None = None,
        frequency: int | None = None,
        pruner_opts: dict[str, Any] | None = None,
        steps_per_epoch: int | None = None,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        keep_tied: bool = True,
        attach: bool = True,
        run_dir: str | Path | None = None,
        run_info: dict[str, Any] | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        if not isinstance(total_steps, int) or total_steps < 1:
            raise UsageError(f"total_steps must be a whole number of optimizer steps >= 1, got {total_steps!r}.")
        self.model = unwrap(model)
        self.optimizer = torch_optimizer(optimizer)
        registry = (plugins or get_plugins()).registry
        kind = type(self.optimizer).__name__.lower()
        config = RunConfig(
            optimizer=kind if kind in registry.entries["optimizers"] else "adamw",
            pruner=pruner,
            sparsity=sparsity,
            schedule=schedule,
            warmup=warmup,
            prune_end=prune_end,
            frequency=frequency,
            pruner_opts=dict(pruner_opts or {}),
        )
        self.resolved = validate(config, registry)
        self.selection: Selection = select_targets(self.model, include, exclude, keep_tied)
        self.targets = self.selection.targets
        self.schedule = make_schedule(self.resolved.config, total_steps)
        self.total_steps = total_steps
        self.prunes = not self.resolved.pruner.metadata["dense"] and sparsity > 0
        self.warnings: list[str] = []
        if self.prunes and self.schedule.end > total_steps:
            self._warn(
                f"pruning ramps until step {self.schedule.end} but total_steps is {total_steps}: the target will not be reached."
            )
        self.pruner = self.resolved.pruner.factory(self.targets, **self.resolved.pruner_opts)
        self.pruner.bind(self.optimizer)
        self.pruner.start(TrainingPlan(total_steps, steps_per_epoch or total_steps, self.schedule))
        #: Optimizer steps that really ran (the post-hook counts them) and those the pruner has seen.
        self.optimizer_steps = 0
        self.step = 0
        self.mask_updates = int(masks_before_training(self.pruner, self.schedule, self.prunes))
        self._state_checked = False
        self.attached = attach
        self._hooks = [self.optimizer.register_step_post_hook(self._on_step_done)]
        if attach:
            self._hooks.append(self.optimizer.register_step_pre_hook(self._on_step_start))
        #: The run directory (``run_dir=``; ``run_info``: model, dataset, seed, batch_size, epochs), else None.
        self.run = OwnRun(run_dir, self, run_info or {}) if run_dir is not None else None

    # ------------------------------------------------------------ the two points of a step

    def before_step(self) -> None:
        """After backward (and unscaling), before ``optimizer.step()``: mask gradients (``attach=False`` only)."""
        self.pruner.before_step(self.step + 1)

    def after_step(self) -> bool:
        """After ``optimizer.step()``: the scheduled mask update and enforcement, when the step really ran.

        Returns whether it did; a step a GradScaler skipped (or an accumulation micro-batch) is not a step.
        With ``attach=True`` the post-hook has done this already and this returns False.
        """
        if self.step >= self.optimizer_steps:
            return False
        if self.optimizer_steps > self.step + 1:
            raise RuntimeError(f"the optimizer stepped {self.optimizer_steps - self.step} times since after_step was last called")
        self.step += 1
        self._check_required_state()
        self.mask_updates += masks_after_step(self.pruner, self.schedule, self.step, self.prunes)
        return True

    def _on_step_start(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if skipped_inside(optimizer):
            return
        unscale_inside(optimizer)
        self.before_step()

    def _on_step_done(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if skipped_inside(optimizer):
            return
        self.optimizer_steps += 1
        if self.attached:
            self.after_step()

    def detach(self) -> None:
        """Remove the optimizer hooks (the masks stay as they are)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def _check_required_state(self) -> None:
        if self._state_checked:
            return
        self._state_checked = True
        required = self.resolved.pruner.metadata["requires"]
        state = self.optimizer.state.get(self.targets[0].parameter, {})
        missing = [name for name in required if name not in state]
        if missing:
            raise UsageError(
                f"Pruner '{self.resolved.pruner.name}' needs optimizer state {', '.join(missing)}, "
                f"which {type(self.optimizer).__name__} does not keep."
            )

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        warnings.warn(message, stacklevel=3)

    # ------------------------------------------------------------ what it achieved

    @property
    def scheduled_sparsity(self) -> float:
        """The schedule's sparsity after the steps so far (0 when nothing is pruned)."""
        return self.schedule.sparsity_at(self.step) if self.prunes else 0.0

    def sparsity(self) -> dict[str, Any]:
        """Exact zeros the forward pass sees, as ``summary.json``'s ``sparsity_counts``, plus ``per_layer`` fractions."""
        counts: dict[str, Any] = dict(measure_sparsity(self.model, self.targets))
        counts["per_layer"] = {
            t.name: 1.0 - torch.count_nonzero(t.weight.detach()).item() / t.weight.numel() for t in self.targets
        }
        return counts

    def ledger(self) -> dict[str, Any]:
        """Exact bytes of what training keeps, as ``summary.json``'s ``ledger``."""
        return memory_ledger(self.model, self.optimizer, self.pruner.state_tensors(), self.targets, self.pruner.transient_bytes())

    def describe(self) -> dict[str, Any]:
        """The settings this sparsifier resolved: pruner, options, schedule, targets."""
        s = self.schedule
        return {
            "pruner": self.resolved.pruner.name,
            "pruner_opts": self.resolved.pruner_opts,
            "sparsity": self.resolved.config.sparsity,
            "schedule": s.kind,
            "warmup": s.warmup,
            "prune_end": s.end,
            "frequency": s.frequency,
            "total_steps": self.total_steps,
            "targets": self.selection.describe(),
        }

    def log_epoch(self, epoch: int, **figures: float) -> dict[str, Any]:
        """A ``metrics.jsonl`` line in the run directory: your figures (test_accuracy in %, train_loss ...) and the sparsities."""
        return self._own_run().log_epoch(epoch, **figures)

    def finish(self, correct: Any = None, labels: Any = None) -> dict[str, Any]:
        """Write the run directory's ``summary.json`` (and ``test_correct.bin``: ``correct``, one bool per test example, and their ``labels``)."""
        return dict(self._own_run().finish(correct, labels))

    def _own_run(self) -> OwnRun:
        if self.run is None:
            raise UsageError("This Sparsifier has no run directory; pass run_dir= when building it.")
        return self.run

    # ------------------------------------------------------------ your checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Steps, mask-update count and the pruner's state, for your own checkpoint (tensors and plain data)."""
        return {
            "format": STATE_FORMAT,
            "settings": self.describe(),
            "step": self.step,
            "mask_updates": self.mask_updates,
            "pruner": self.pruner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; UsageError when it was saved by a sparsifier with other settings."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise UsageError("Not a prunekit Sparsifier state (or one of another format).")
        saved, here = state.get("settings"), self.describe()
        if saved != here:
            differ = sorted(k for k in here if not isinstance(saved, dict) or saved.get(k) != here[k])
            raise UsageError(f"Sparsifier state was saved with other settings ({', '.join(differ)}); build it as it was.")
        self.pruner.load_state_dict(state["pruner"])
        self.step = self.optimizer_steps = int(state["step"])
        self.mask_updates = int(state["mask_updates"])
        self._state_checked = self.step > 0
        self.pruner.enforce()
