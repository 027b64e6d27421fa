"""``PrunekitCallback``: a :class:`prunekit.Sparsifier` driven by ``transformers.Trainer``.

``Trainer(..., callbacks=[PrunekitCallback(pruner="magnitude", sparsity=0.5)])`` is all it
takes: the number of steps is the Trainer's ``max_steps`` (given, or epochs x update steps),
and the sparsifier hooks the Trainer's torch optimizer, so only optimizer steps that really
run count (accelerate's skipped fp16 steps and accumulation micro-batches do not). GPT-2's
``Conv1D`` layers are pruned like ``nn.Linear``; embeddings and any weight tied to one
(``lm_head``) stay dense unless ``keep_tied=False``. Its state is saved beside each Trainer
checkpoint (``checkpoint-N/prunekit_sparsifier.pt``) and read back when the Trainer resumes
from ``checkpoint-N`` (or from ``resume_from``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from prunekit.errors import UsageError
from prunekit.sparsifier import Sparsifier

#: The file each Trainer checkpoint folder gets.
STATE_FILE = "prunekit_sparsifier.pt"


class PrunekitCallback(TrainerCallback):
    """Prune while ``transformers.Trainer`` trains; ``options`` are :class:`~prunekit.Sparsifier`'s (but total_steps)."""

    def __init__(
        self, pruner: str = "magnitude", sparsity: float = 0.5, resume_from: str | Path | None = None, **options: Any
    ) -> None:
        if "total_steps" in options or "attach" in options:
            raise UsageError("PrunekitCallback takes the number of steps from the Trainer; drop total_steps/attach.")
        self.options = {"pruner": pruner, "sparsity": sparsity, **options}
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.sparsifier: Sparsifier | None = None

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        optimizer: Any = None,
        **kwargs: Any,
    ) -> None:
        if self.sparsifier is not None:
            self.sparsifier.detach()
        self.sparsifier = Sparsifier(model, optimizer, total_steps=int(state.max_steps), **self.options)
        if state.global_step > 0:  # resuming: the Trainer restored model, optimizer and its state
            folder = self.resume_from or Path(args.output_dir or ".") / f"checkpoint-{state.global_step}"
            path = folder / STATE_FILE
            if not path.is_file():
                raise UsageError(
                    f"Resuming at step {state.global_step} but {path} is missing; pass resume_from=<checkpoint folder>."
                )
            self.sparsifier.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        folder = Path(args.output_dir or ".") / f"checkpoint-{state.global_step}"
        if self.sparsifier is not None and folder.is_dir() and state.is_world_process_zero:
            torch.save(self.sparsifier.state_dict(), folder / STATE_FILE)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.sparsifier is not None:
            self.sparsifier.detach()
