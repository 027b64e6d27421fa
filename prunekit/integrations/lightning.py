"""``PrunekitCallback``: a :class:`prunekit.Sparsifier` driven by a Lightning ``Trainer``.

``Trainer(callbacks=[PrunekitCallback(pruner="magnitude", sparsity=0.5)])``: the number of
steps is the Trainer's ``estimated_stepping_batches`` (max steps, or epochs x batches over
gradient accumulation). Lightning runs backward inside ``optimizer.step(closure)``, so the
sparsifier is driven by hand (``attach=False``): gradients are masked in
``on_before_optimizer_step`` (under ``precision="16-mixed"`` with a fused optimizer, which
Lightning leaves scaled, after unscaling them), masks updated in ``on_train_batch_end`` when
the optimizer really stepped. Its state travels in Lightning's own checkpoints (``state_dict`` /
``load_state_dict``) and is put back when training starts again from one. Embeddings and
weights tied to them stay dense unless ``keep_tied=False``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from prunekit.errors import UsageError
from prunekit.sparsifier import Sparsifier


class PrunekitCallback(pl.Callback):
    """Prune while Lightning trains; ``options`` are :class:`~prunekit.Sparsifier`'s (but total_steps and attach)."""

    def __init__(self, pruner: str = "magnitude", sparsity: float = 0.5, **options: Any) -> None:
        if "total_steps" in options or "attach" in options:
            raise UsageError("PrunekitCallback takes the number of steps from the Trainer; drop total_steps/attach.")
        self.options = {"pruner": pruner, "sparsity": sparsity, **options}
        self.sparsifier: Sparsifier | None = None
        self._restored: dict[str, Any] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if len(trainer.optimizers) != 1:
            raise UsageError(f"PrunekitCallback needs exactly one optimizer; the module configures {len(trainer.optimizers)}.")
        if self.sparsifier is not None:
            self.sparsifier.detach()
        total = int(trainer.estimated_stepping_batches)
        self.sparsifier = Sparsifier(pl_module, trainer.optimizers[0], total_steps=total, attach=False, **self.options)
        if self._restored is not None:  # a checkpoint's state (load_state_dict runs before the optimizers exist)
            self.sparsifier.load_state_dict(self._restored)
            self._restored = None

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if self.sparsifier is None:
            return
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        inner = self.sparsifier.optimizer
        if scaler is not None and getattr(inner, "_step_supports_amp_scaling", False):
            # Lightning leaves a fused optimizer's gradients scaled (its kernel unscales them): unscale them
            # now, so pruners read true gradients, and prune nothing on an overflow (the scaler skips the step)
            scaler.unscale_(inner)
            if any(not bool(p.grad.isfinite().all()) for p in pl_module.parameters() if p.grad is not None):
                return
        self.sparsifier.before_step()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.sparsifier is not None:
            self.sparsifier.after_step()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.sparsifier is not None:
            self.sparsifier.detach()

    def state_dict(self) -> dict[str, Any]:
        return self.sparsifier.state_dict() if self.sparsifier is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = dict(state_dict) or None
