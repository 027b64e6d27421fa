"""What orders a training epoch, by name, for checkpoints: :func:`data_generators`; and
:func:`skip_batches`, which leaves out the batches a resumed epoch has already done."""

from __future__ import annotations

from typing import Any

from prunekit.core.data.loaders import SeededOrder, TensorBatches
from prunekit.core.data.sharded import EpochSampler, ShardedBatches


def _order(loader: Any) -> Any:
    """The part of a loader that orders each epoch and can skip the start of the next (else None)."""
    if isinstance(loader, (TensorBatches, ShardedBatches)):
        return loader
    sampler = getattr(loader, "sampler", None)
    return sampler if isinstance(sampler, (SeededOrder, EpochSampler)) else None


def data_generators(loader: Any) -> dict[str, Any]:
    """The generators that decide what a training epoch sees, by name (saved in checkpoints):
    a ``torch.Generator``, or under torchrun the DistributedSampler's epoch (same interface).

    A checkpoint taken part-way through an epoch saves their states as they were
    when the epoch began and, on resume, :func:`skip_batches` leaves out the
    batches done; so a loader must draw from them in a way skipping reproduces
    (e.g. one permutation and augmentation per epoch, drawn when iteration starts).
    """
    order = _order(loader)
    return {"order": order.generator} if order is not None else {}


def skip_batches(loader: Any, batches: int) -> None:
    """Leave out the first ``batches`` batches of the loader's next epoch."""
    order = _order(loader)
    if order is loader:  # batches of tensors: skips batches
        order.skip = batches
    elif order is not None:  # a DataLoader's sampler: skips indices
        order.skip = batches * loader.batch_size
    elif batches:
        raise ValueError("this loader cannot start part-way through an epoch")
