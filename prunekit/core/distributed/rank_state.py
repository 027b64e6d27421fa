"""Checkpoints under torchrun: rank 0 writes one file that every rank resumes from.

Model, optimizer and pruner state are identical on every rank (the gradients are
all-reduced), so rank 0's stand for all. What each rank holds for itself (its random
number generators, the partial sums of an epoch stopped part-way, its samplers'
aggregates) is gathered into :attr:`Checkpoint.ranks`; on resume rank r takes its own
back, so a resumed DDP run goes on exactly as the uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from prunekit.core.distributed import ddp as distributed
from prunekit.core.rundir import checkpoint


def gather(
    dist: distributed.Dist,
    generators: dict[str, checkpoint.OrderState | torch.Tensor],
    loop: dict[str, Any],
    samplers: dict[str, Any],
) -> list[dict[str, Any]]:
    """Every rank's own state, in rank order; ``[]`` for a single process.

    Collective: every rank calls it at the same point of the run.
    """
    if not dist.enabled:
        return []
    own = {
        "rng": checkpoint.capture_rng(generators),
        "loop": {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in loop.items()},
        "samplers": samplers,
    }
    return distributed.gather(dist, own)


def own_view(saved: checkpoint.Checkpoint, dist: distributed.Dist, path: Path) -> checkpoint.Checkpoint:
    """The checkpoint as this rank resumes it (its own generators, partial sums and samplers).

    CheckpointError if it was written by a run on another number of processes.
    """
    written = len(saved.ranks) or 1
    if written != dist.world_size:
        how = f"--nproc-per-node {written}" if written > 1 else "one process (without torchrun)"
        raise checkpoint.CheckpointError(
            f"{path} was written by a run on {written} process(es) and this one has {dist.world_size}: "
            f"resume it with {how}, or start the run again."
        )
    if not saved.ranks:
        return saved
    own = saved.ranks[dist.rank]
    return replace(saved, rng=own["rng"], loop=saved.loop | own["loop"], samplers=own["samplers"])
