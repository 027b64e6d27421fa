"""Write small datasets in the real on-disk formats, for tests and benchmarks (nothing is downloaded).

``write_mnist`` writes the idx files torchvision's ``MNIST`` reads
(``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``);
``write_cifar`` writes the python-pickle batches of CIFAR-10
(``ROOT/cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta``) or CIFAR-100
(``ROOT/cifar-100-python/train, test, meta``).
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import torch


def _idx(path: Path, magic: int, tensor: torch.Tensor) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in tensor.shape)
    path.write_bytes(header + tensor.to(torch.uint8).contiguous().numpy().tobytes())


def write_mnist(root: Path, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor]) -> Path:
    """``(images uint8 (N, 28, 28), labels)`` per split as MNIST idx files under ``root``; returns ``root``."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", 2051, images)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", 2049, labels)
    return Path(root)


def write_cifar(
    root: Path, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], classes: int = 10
) -> Path:
    """``(images uint8 (N, 3, 32, 32), labels)`` per split as CIFAR-10 (5 train batches) or CIFAR-100 pickles."""
    folder = Path(root) / ("cifar-10-batches-py" if classes == 10 else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    key = "labels" if classes == 10 else "fine_labels"

    def dump(name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
        entry = {"data": images.reshape(len(images), -1).numpy(), key: [int(v) for v in labels]}
        with open(folder / name, "wb") as handle:
            pickle.dump(entry, handle)

    meta = ("batches.meta", "label_names") if classes == 10 else ("meta", "fine_label_names")
    with open(folder / meta[0], "wb") as handle:
        pickle.dump({meta[1]: [f"class{i}" for i in range(classes)]}, handle)
    if classes == 10:
        for i, (images, labels) in enumerate(zip(train[0].tensor_split(5), train[1].tensor_split(5)), start=1):
            dump(f"data_batch_{i}", images, labels)
        dump("test_batch", *test)
    else:
        dump("train", *train)
        dump("test", *test)
    return Path(root)
