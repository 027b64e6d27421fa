"""What one run carries from validation to its summary, bundled so the runner's steps share it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from prunekit.core.config.settings import RunConfig
from prunekit.core.distributed.ddp import Dist
from prunekit.core.plugins.loading import Plugins
from prunekit.core.run.validation import ResolvedRun
from prunekit.core.rundir import checkpoint
from prunekit.core.sparsity.schedule import Schedule
from prunekit.core.train.parts import Autocast, Built
from prunekit.core.train.training import StepCallback

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RunContext:
    """The validated job, where it runs, and the caller's callbacks; fixed for the whole run."""

    config: RunConfig
    resolved: ResolvedRun
    plugins: Plugins
    dist: Dist
    device: torch.device
    autocast: Autocast
    scaler: torch.amp.GradScaler | None
    started_at: float  # time.perf_counter() when run() was called
    warn: Callable[[str], None]
    on_epoch: EpochCallback | None = None
    on_step: StepCallback | None = None
    resume_from: checkpoint.Checkpoint | None = None


@dataclass(frozen=True)
class Training:
    """What was built for the run and how it is trained: the parts the epoch loop and the summary use."""

    built: Built
    schedule: Schedule
    prunes: bool  # a pruning run (not dense, target sparsity > 0)
    total_steps: int
    identity: dict[str, Any]  # what a checkpoint must match to be restored into this run
