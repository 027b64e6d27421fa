"""This rank's share of the data under torchrun (see :mod:`prunekit.core.distributed.ddp`).

Training: each rank reads its share of one seeded permutation per epoch
(``DistributedSampler``, seed = the run's seed, ``set_epoch``). Evaluation: rank r
scores test examples r, r+N, r+2N, ... (no padding), so each counts exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from prunekit.core.data.loaders import ImageTensors, InMemory, in_memory_tensors
from prunekit.core.distributed.ddp import Dist


class EpochCounter:
    """The epoch a DistributedSampler orders next, with a generator's ``get_state``/``set_state``,
    so checkpoints save and restore it like the single-process loaders' generators."""

    def __init__(self) -> None:
        self.epoch = 0

    def get_state(self) -> torch.Tensor:
        return torch.tensor([self.epoch], dtype=torch.int64)

    def set_state(self, new_state: torch.Tensor) -> None:
        self.epoch = int(new_state[0])

    def next_epoch(self, sampler: Any) -> None:
        sampler.set_epoch(self.epoch)
        self.epoch += 1


class ShardedBatches:
    """This rank's batches of in-memory data (see :class:`~prunekit.core.data.loaders.InMemory`), in
    DistributedSampler's seeded order; augmentation drawn per epoch from a generator seeded
    with (seed, rank, epoch). ``skip`` batches of the next epoch are left out (a run resumed mid-epoch).
    """

    def __init__(self, dataset: Dataset[Any], batch_size: int, dist: Dist, seed: int, device: torch.device | str = "cpu") -> None:
        from torch.utils.data.distributed import DistributedSampler

        self.data = InMemory(dataset, torch.device(device))
        self.info = self.data.info
        self.batch_size, self.seed, self.rank = batch_size, seed, dist.rank
        self.sampler: DistributedSampler[int] = DistributedSampler(dataset, dist.world_size, dist.rank, shuffle=True, seed=seed)
        self.generator = EpochCounter()
        self.skip = 0

    def __len__(self) -> int:
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.generator.epoch
        self.generator.next_epoch(self.sampler)
        index = torch.tensor(list(self.sampler), dtype=torch.long).to(self.data.data_device)
        params = self.data.draw(len(index), torch.Generator().manual_seed(hash((self.seed, self.rank, epoch)) & 0xFFFF_FFFF_FFFF))
        first, self.skip = self.skip * self.batch_size, 0
        for start in range(first, len(index), self.batch_size):
            end = start + self.batch_size
            yield self.data.batch(index[start:end], None if params is None else params[start:end])


class EpochSampler:
    """A DistributedSampler that advances its epoch each time a DataLoader iterates it;
    ``skip`` leading indices of the next epoch are left out (a run resumed mid-epoch)."""

    def __init__(self, sampler: Any) -> None:
        self.sampler, self.generator, self.skip = sampler, EpochCounter(), 0

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[int]:
        self.generator.next_epoch(self.sampler)
        first, self.skip = self.skip, 0
        return iter(list(self.sampler)[first:])


def train_loader(
    dataset: Dataset[Any], batch_size: int, dist: Dist, seed: int, device: torch.device | str = "cpu", workers: int = 0
) -> ShardedBatches | DataLoader[Any]:
    """This rank's training batches (every rank the same number of steps; the sampler pads)."""
    if in_memory_tensors(dataset) is not None:
        return ShardedBatches(dataset, batch_size, dist, seed, device)
    pin_memory = torch.device(device).type == "cuda"
    from torch.utils.data.distributed import DistributedSampler

    sampler = EpochSampler(DistributedSampler(dataset, dist.world_size, dist.rank, shuffle=True, seed=seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )


def eval_shard(dataset: Dataset[Any], dist: Dist) -> Dataset[Any]:
    """Test examples rank, rank + N, ...: disjoint shards covering every example once (no padding)."""
    if not dist.enabled:
        return dataset
    indices = list(range(dist.rank, len(dataset), dist.world_size))  # type: ignore[arg-type]
    if isinstance(dataset, TensorDataset):
        return TensorDataset(*(t[indices] for t in dataset.tensors))
    if isinstance(dataset, ImageTensors):
        return dataset.subset(torch.tensor(indices, dtype=torch.long))
    return Subset(dataset, indices)
