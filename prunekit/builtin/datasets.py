"""Built-in datasets: embedded digits, torchvision sets from disk, synthetic tensors.

MNIST and CIFAR are decoded once into ``uint8`` tensors (``ImageTensors``): the
core batches, augments and normalises them on the training device. Image
folders (ImageNet) are read per image by a DataLoader with workers.
"""

from __future__ import annotations

import contextlib
import gzip
import pickle
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from prunekit.api import DatasetSplits, ImageTensors, Option, Register, UsageError, hookimpl

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2

MNIST_NORM = ((0.1307,), (0.3081,))
CIFAR10_NORM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR100_NORM = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def load_digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 UCI 8x8 digits as shipped in scikit-learn: (N, 64) floats 0..16, labels."""
    raw = resources.files("prunekit.data").joinpath("digits.csv.gz").read_bytes()
    rows = [line.split(",") for line in gzip.decompress(raw).decode().splitlines() if line]
    values = torch.tensor([[float(v) for v in row] for row in rows])
    return values[:, :64], values[:, 64].long()


def digits(data_dir: Path | None, download: bool, seed: int) -> DatasetSplits:
    """UCI digits upsampled to 1x32x32, normalised by train statistics.

    The train/test split is fixed (seed 0, 20% test) whatever the run seed, so
    every run is scored on the same 359 images.
    """
    pixels, labels = load_digits_arrays()
    images = F.interpolate(pixels.view(-1, 1, 8, 8) / 16.0, size=(32, 32), mode="bilinear", align_corners=False)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    n_test = int(round(len(labels) * DIGITS_TEST_FRACTION))
    test_idx, train_idx = order[:n_test], order[n_test:]
    mean, std = images[train_idx].mean(), images[train_idx].std()
    images = (images - mean) / std
    return DatasetSplits(
        TensorDataset(images[train_idx].contiguous(), labels[train_idx]),
        TensorDataset(images[test_idx].contiguous(), labels[test_idx]),
        num_classes=10,
        in_channels=1,
        image_size=32,
    )


def _need_dir(name: str, data_dir: Path | None, download: bool) -> Path:
    if data_dir is None:
        raise UsageError(f"Dataset '{name}' reads from disk: pass --data-dir DIR (and --download to fetch it there).")
    data_dir = Path(data_dir)
    if not download and not data_dir.is_dir():
        raise UsageError(f"Data directory {data_dir} does not exist (dataset '{name}'); pass --download to fetch it there.")
    return data_dir


def _locked_download(data_dir: Path, download: bool) -> contextlib.AbstractContextManager[Any]:
    """A file lock around downloads: matrix runs in parallel must not download into one folder at once."""
    if not download:
        return contextlib.nullcontext()
    from filelock import FileLock

    data_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(data_dir / ".prunekit-download.lock"))


def _not_found(name: str, data_dir: Path, expected: str, exc: Exception) -> UsageError:
    return UsageError(
        f"Dataset '{name}' not found or corrupt under {data_dir} (expected {expected}); "
        f"pass --download to fetch it. ({(str(exc).splitlines() or [type(exc).__name__])[0]})"
    )


def resize_once(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``uint8`` images ``(N, C, H, W)``, as ``transforms.Resize`` does per PIL image."""
    from torchvision.transforms import functional as TF

    resized: torch.Tensor = TF.resize(images, [size, size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return resized


def mnist(data_dir: Path | None, download: bool, seed: int) -> DatasetSplits:
    """MNIST (torchvision's reader of the idx files), decoded once to ``uint8``, resized to 32x32 once."""
    from torchvision import datasets

    root = _need_dir("mnist", data_dir, download)
    try:
        with _locked_download(root, download):
            sets = [datasets.MNIST(str(root), train=train, download=download) for train in (True, False)]
    except RuntimeError as exc:
        raise _not_found("mnist", root, f"{root}/MNIST/raw/*-ubyte", exc) from None
    train, test = (ImageTensors(resize_once(s.data.unsqueeze(1), 32), s.targets, *MNIST_NORM) for s in sets)
    return DatasetSplits(train, test, num_classes=10, in_channels=1, image_size=32)


def read_cifar(folder: Path, files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The python-pickle CIFAR batches (the format torchvision reads) as ``uint8 (N, 3, 32, 32)`` and labels."""
    images, labels = [], []
    for name in files:
        with open(folder / name, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
        images.append(torch.as_tensor(entry["data"], dtype=torch.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    return torch.cat(images), torch.tensor(labels, dtype=torch.long)


def _cifar(
    name: str,
    cls_name: str,
    norm: tuple[tuple[float, ...], tuple[float, ...]],
    num_classes: int,
    data_dir: Path | None,
    download: bool,
) -> DatasetSplits:
    from torchvision import datasets

    cls = getattr(datasets, cls_name)
    root = _need_dir(name, data_dir, download)
    folder = root / cls.base_folder
    try:
        if download:  # torchvision fetches and verifies the archive
            with _locked_download(root, download):
                cls(str(root), train=True, download=True)
        train = read_cifar(folder, [f for f, _ in cls.train_list])
        test = read_cifar(folder, [f for f, _ in cls.test_list])
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as exc:
        raise _not_found(name, root, f"{folder}/", exc) from None
    return DatasetSplits(
        ImageTensors(*train, *norm, crop_padding=4, flip=True),
        ImageTensors(*test, *norm),
        num_classes=num_classes,
        in_channels=3,
        image_size=32,
    )


def cifar10(data_dir: Path | None, download: bool, seed: int) -> DatasetSplits:
    return _cifar("cifar10", "CIFAR10", CIFAR10_NORM, 10, data_dir, download)


def cifar100(data_dir: Path | None, download: bool, seed: int) -> DatasetSplits:
    return _cifar("cifar100", "CIFAR100", CIFAR100_NORM, 100, data_dir, download)


def imagenet(data_dir: Path | None, download: bool, seed: int) -> DatasetSplits:
    """ImageFolder over DIR/train and DIR/val (one sub-folder per class); never downloads."""
    from torchvision import datasets, transforms

    if download:
        raise UsageError("Dataset 'imagenet' cannot be downloaded: place it as DIR/train/<class>/ and DIR/val/<class>/.")
    root = _need_dir("imagenet", data_dir, False)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise UsageError(f"Dataset 'imagenet' expects {root / split}/ with one folder per class; it is missing.")
    normalize = transforms.Normalize(*IMAGENET_NORM)
    train_tf = transforms.Compose(
        [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize]
    )
    test_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalize])
    try:
        train = datasets.ImageFolder(str(root / "train"), transform=train_tf)
        test = datasets.ImageFolder(str(root / "val"), transform=test_tf)
    except (FileNotFoundError, RuntimeError) as exc:
        raise UsageError(f"Dataset 'imagenet' under {root} is malformed: {str(exc).splitlines()[0]}") from None
    if train.classes != test.classes:
        raise UsageError(f"Dataset 'imagenet': {root}/train and {root}/val have different class folders.")
    return DatasetSplits(train, test, num_classes=len(train.classes), in_channels=3, image_size=224)


def synthetic(
    data_dir: Path | None,
    download: bool,
    seed: int,
    *,
    num_classes: int = 10,
    channels: int = 3,
    image_size: int = 32,
    train_size: int = 512,
    test_size: int = 128,
) -> DatasetSplits:
    """Seeded random images around one random prototype per class (learnable)."""
    size = (train_size + test_size) * channels * image_size**2 * 4
    if size > SYNTHETIC_MAX_BYTES:
        raise UsageError(
            f"Dataset 'synthetic' with {train_size + test_size:,} images of {channels}x{image_size}x{image_size} "
            f"would take {size:,} bytes; at most {SYNTHETIC_MAX_BYTES:,}: lower train_size, test_size or image_size."
        )
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_classes, channels, image_size, image_size, generator=g)

    def split(n: int) -> TensorDataset:
        labels = torch.randint(0, num_classes, (n,), generator=g)
        noise = torch.randn(n, channels, image_size, image_size, generator=g)
        return TensorDataset(prototypes[labels] * 0.5 + noise, labels)

    return DatasetSplits(split(train_size), split(test_size), num_classes, channels, image_size)


#: The most memory the synthetic images may take (float32, train and test together).
SYNTHETIC_MAX_BYTES = 4 << 30

SYNTHETIC_OPTIONS = (
    Option("num_classes", int, 10, "number of classes", minimum=2, maximum=100_000),
    Option("channels", int, 3, "image channels", minimum=1, maximum=64),
    Option("image_size", int, 32, "image height and width", minimum=8, maximum=1024),
    Option("train_size", int, 512, "training examples", minimum=1, maximum=10_000_000),
    Option("test_size", int, 128, "test examples", minimum=1, maximum=10_000_000),
)


@hookimpl
def register_datasets(register: Register) -> None:
    register("digits", digits, description="UCI handwritten digits (1,797 8x8 images, embedded), upsampled to 32x32")
    register("mnist", mnist, description="MNIST from --data-dir (torchvision), resized to 32x32")
    register("cifar10", cifar10, description="CIFAR-10 from --data-dir (torchvision), crop+flip augmentation")
    register("cifar100", cifar100, description="CIFAR-100 from --data-dir (torchvision), crop+flip augmentation")
    register("imagenet", imagenet, description="ImageNet as ImageFolder: --data-dir with train/ and val/")
    register("synthetic", synthetic, description="seeded random tensors of a chosen shape", options=SYNTHETIC_OPTIONS)
