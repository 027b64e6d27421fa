"""What a dataset plugin returns, and the batch loaders the core builds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


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
    """

    def __init__(self, dataset: TensorDataset, batch_size: int, shuffle: bool, seed: int) -> None:
        self.inputs, self.labels = dataset.tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.labels) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                yield self.inputs[start : start + self.batch_size], self.labels[start : start + self.batch_size]
            else:
                index = order[start : start + self.batch_size]
                yield self.inputs[index], self.labels[index]


def make_loader(
    dataset: Dataset[Any], batch_size: int, *, shuffle: bool, seed: int, workers: int = 0, pin_memory: bool = False
) -> TensorBatches | DataLoader[Any]:
    """A TensorBatches for tensor data, otherwise a seeded DataLoader."""
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        return TensorBatches(dataset, batch_size, shuffle, seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
