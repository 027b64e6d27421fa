"""What a dataset plugin returns, and the batch loaders the core builds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset


@dataclass
class DatasetSplits:
    """Train and test splits plus the shape facts a model factory needs."""

    train: Dataset[Any]
    test: Dataset[Any]
    num_classes: int
    in_channels: int
    image_size: int


class TensorBatches:
    """Batches of an in-memory TensorDataset, shuffled by a seeded generator.

    Much cheaper than a DataLoader for data that already sits in tensors.
    ``skip`` batches of the next epoch are left out (a run resumed mid-epoch).
    """

    def __init__(self, dataset: TensorDataset, batch_size: int, shuffle: bool, seed: int) -> None:
        self.inputs, self.labels = dataset.tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.skip = 0

    def __len__(self) -> int:
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        first, self.skip = self.skip * self.batch_size, 0
        for start in range(first, n, self.batch_size):
            if order is None:
                yield self.inputs[start : start + self.batch_size], self.labels[start : start + self.batch_size]
            else:
                index = order[start : start + self.batch_size]
                yield self.inputs[index], self.labels[index]


class SeededOrder(Sampler[int]):
    """Indices of a map-style dataset, shuffled each epoch by a seeded generator.

    ``skip`` leading indices of the next epoch are left out (a run resumed mid-epoch).
    """

    def __init__(self, size: int, shuffle: bool, seed: int) -> None:
        self.size = size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.skip = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        first, self.skip = self.skip, 0
        return iter(order[first:].tolist())


def _order(loader: Any) -> Any:
    """The part of a loader that orders each epoch and can skip the start of the next (else None)."""
    from prunekit.core.distributed import EpochSampler, ShardedBatches

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
    (e.g. one permutation per epoch, drawn when iteration starts).
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


def make_loader(
    dataset: Dataset[Any], batch_size: int, *, shuffle: bool, seed: int, workers: int = 0, pin_memory: bool = False
) -> TensorBatches | DataLoader[Any]:
    """A TensorBatches for tensor data, otherwise a DataLoader over a :class:`SeededOrder`.

    The DataLoader's own generator only seeds worker processes; the order of
    examples comes from the sampler's, so a checkpoint can restore it exactly.
    """
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        return TensorBatches(dataset, batch_size, shuffle, seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=SeededOrder(len(dataset), shuffle, seed),  # type: ignore[arg-type]
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
