"""What a dataset plugin returns, and the batch loaders the core builds.

In-memory data (``ImageTensors``: decoded ``uint8`` images; ``TensorDataset``:
ready tensors) is moved to the training device when it fits, and batches are
built there by indexing, with augmentation and normalisation as batched
tensor operations. Any other ``Dataset`` (image folders on disk) goes through
a ``DataLoader`` with worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from prunekit.core.data.augment import channel_tensor, crop_flip, draw_crop_flip, normalize

#: In-memory data goes to a GPU when it takes at most this fraction of the free memory.
DEVICE_FRACTION = 0.25
MAX_WORKERS = 8


@dataclass
class DatasetSplits:
    """Train and test splits plus the shape facts a model factory needs."""

    train: Dataset[Any]
    test: Dataset[Any]
    num_classes: int
    in_channels: int
    image_size: int


class ImageTensors(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Decoded ``uint8`` images ``(N, C, H, W)`` and labels, with the transforms to apply per batch.

    ``mean``/``std`` (per channel, on the 0..1 scale) normalise as torchvision's
    ``ToTensor`` + ``Normalize``; ``crop_padding`` > 0 takes random crops of the
    zero-padded image (``RandomCrop(H, padding)``) and ``flip`` mirrors half of
    the images (``RandomHorizontalFlip``). The core batches it on the device;
    ``dataset[i]`` gives one transformed image (torch's global RNG) for other users.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: int = 0,
        flip: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(labels) != len(images) or len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise ValueError("labels, mean and std must match the images (count, channels)")
        self.images, self.labels = images, labels.long()
        self.mean, self.std = tuple(mean), tuple(std)
        self.crop_padding, self.flip = crop_padding, flip
        self._constants: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.transform(self.images[index : index + 1], self.draw(1, None))
        return x[0], self.labels[index]

    def to(self, device: torch.device) -> ImageTensors:
        """The same data and transforms, its tensors on ``device``."""
        return ImageTensors(self.images.to(device), self.labels.to(device), self.mean, self.std, self.crop_padding, self.flip)

    def subset(self, index: torch.Tensor) -> ImageTensors:
        """The images at ``index``, with the same transforms."""
        return ImageTensors(self.images[index], self.labels[index], self.mean, self.std, self.crop_padding, self.flip)

    def draw(self, n: int, generator: torch.Generator | None) -> torch.Tensor | None:
        """The random augmentation of ``n`` images (CPU, one row each), or None if the set does not augment."""
        return draw_crop_flip(n, self.crop_padding, self.flip, generator) if self.augments else None

    def transform(self, batch: torch.Tensor, params: torch.Tensor | None) -> torch.Tensor:
        """Augment a ``uint8`` batch as ``params`` (from :meth:`draw`) say, and normalise it, on its device."""
        if batch.device not in self._constants:
            self._constants[batch.device] = (channel_tensor(self.mean, batch.device), channel_tensor(self.std, batch.device))
        mean, std = self._constants[batch.device]
        if params is not None:
            batch = crop_flip(batch, self.crop_padding, params)
        return normalize(batch, mean, std)


def in_memory_tensors(dataset: Dataset[Any]) -> list[torch.Tensor] | None:
    """The tensors of an in-memory dataset the core batches itself, else None."""
    if isinstance(dataset, ImageTensors):
        return [dataset.images, dataset.labels]
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        return list(dataset.tensors)
    return None


def fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether ``nbytes`` of data may live on ``device`` (CPU: always; GPU: a quarter of its free memory)."""
    if device.type == "cpu":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_FRACTION * free


class InMemory:
    """An in-memory dataset placed for training on ``device``: on it when it fits, else in host memory.

    :meth:`batch` gives the examples at ``index`` on ``device``, transformed as
    the dataset says (``params``: their rows of an :meth:`ImageTensors.draw`).
    """

    def __init__(self, dataset: Dataset[Any], device: torch.device) -> None:
        tensors = in_memory_tensors(dataset)
        if tensors is None:
            raise TypeError(f"{type(dataset).__name__} is not an in-memory dataset")
        self.nbytes = sum(t.numel() * t.element_size() for t in tensors)
        self.device = device
        self.data_device = device if fits_on(device, self.nbytes) else torch.device("cpu")
        self.images = dataset.to(self.data_device) if isinstance(dataset, ImageTensors) else None
        placed = in_memory_tensors(self.images) if self.images is not None else [t.to(self.data_device) for t in tensors]
        assert placed is not None
        self.inputs, self.labels = placed
        self.info: dict[str, Any] = {
            "kind": "tensors",
            "placement": "device" if self.data_device == device else "host",
            "bytes": self.nbytes,
            "workers": 0,
            "pin_memory": self.data_device != device,
            "persistent_workers": False,
        }

    def __len__(self) -> int:
        return len(self.labels)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """The augmentation of an epoch of ``n`` examples (a row per position in it, on the training device), or None."""
        params = self.images.draw(n, generator) if self.images is not None else None
        return None if params is None else params.to(self.device)

    def batch(self, index: torch.Tensor | slice, params: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, labels = self.inputs[index], self.labels[index]
        if self.data_device != self.device:
            inputs = inputs.pin_memory().to(self.device, non_blocking=True)
            labels = labels.pin_memory().to(self.device, non_blocking=True)
        if self.images is not None:
            inputs = self.images.transform(inputs, params)
        return inputs, labels


class TensorBatches:
    """Seeded batches of in-memory data, built by indexing (see :class:`InMemory`).

    The order and the augmentation of an epoch are drawn from one seeded CPU
    generator when iteration starts (the same seed gives the same batches on
    any device). ``skip`` batches of the next epoch are left out (a run resumed mid-epoch).
    """

    def __init__(
        self, dataset: Dataset[Any], batch_size: int, shuffle: bool, seed: int, device: torch.device | str = "cpu"
    ) -> None:
        self.data = InMemory(dataset, torch.device(device))
        self.info = self.data.info
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.skip = 0

    def __len__(self) -> int:
        return (len(self.data) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator).to(self.data.data_device) if self.shuffle else None
        params = self.data.draw(n, self.generator)
        first, self.skip = self.skip * self.batch_size, 0
        for start in range(first, n, self.batch_size):
            end = start + self.batch_size
            index = slice(start, end) if order is None else order[start:end]
            yield self.data.batch(index, None if params is None else params[start:end])


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


def default_workers() -> int:
    """DataLoader workers for on-disk data: the cores this process may use, less one for training (1..8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores - 1))


def make_loader(
    dataset: Dataset[Any],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    device: torch.device | str = "cpu",
    workers: int | None = None,
) -> Any:
    """TensorBatches for in-memory data, otherwise a DataLoader over a :class:`SeededOrder`.

    The DataLoader gets ``workers`` processes (``None``: :func:`default_workers`),
    kept between epochs, and pinned memory on a GPU; its own generator only
    seeds worker processes, the order of examples comes from the sampler's, so
    a checkpoint can restore it exactly. Either loader has an ``info`` dict
    (kind, placement, workers, pinning) for the run summary.
    """
    device = torch.device(device)
    if in_memory_tensors(dataset) is not None:
        return TensorBatches(dataset, batch_size, shuffle, seed, device)
    workers = default_workers() if workers is None else workers
    gpu = device.type == "cuda"
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=SeededOrder(len(dataset), shuffle, seed),  # type: ignore[arg-type]
        num_workers=workers,
        pin_memory=gpu,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
    loader.info = {
        "kind": "dataloader",
        "placement": "host",
        "workers": workers,
        "pin_memory": gpu,
        "persistent_workers": workers > 0,
    }
    return loader
