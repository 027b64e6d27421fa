import struct

import pytest
import torch

from prunekit.builtin import datasets
from prunekit.errors import UsageError


def test_digits_is_embedded_with_a_fixed_split():
    a = datasets.digits(None, False, seed=0)
    b = datasets.digits(None, False, seed=123)
    assert len(a.train) == 1438 and len(a.test) == 359
    assert a.train.tensors[0].shape == (1438, 1, 32, 32)
    assert (a.num_classes, a.in_channels, a.image_size) == (10, 1, 32)
    # The split does not depend on the run seed: every run scores the same images.
    assert torch.equal(a.test.tensors[0], b.test.tensors[0])
    assert torch.equal(a.test.tensors[1], b.test.tensors[1])
    assert set(a.train.tensors[1].tolist()) == set(range(10))
    x = a.train.tensors[0]
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3


def test_synthetic_shape_and_seed():
    s = datasets.synthetic(None, False, seed=1, num_classes=4, channels=2, image_size=16, train_size=10, test_size=5)
    assert s.train.tensors[0].shape == (10, 2, 16, 16) and len(s.test) == 5
    again = datasets.synthetic(None, False, seed=1, num_classes=4, channels=2, image_size=16, train_size=10, test_size=5)
    assert torch.equal(s.train.tensors[0], again.train.tensors[0])
    other = datasets.synthetic(None, False, seed=2, num_classes=4, channels=2, image_size=16, train_size=10, test_size=5)
    assert not torch.equal(s.train.tensors[0], other.train.tensors[0])


def _idx(path, magic, dims, payload):
    path.write_bytes(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload)


def test_mnist_reads_idx_files_from_data_dir(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 6), ("t10k", 3)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", 2051, (n, 28, 28), bytes(range(256)) * 0 + bytes(n * 28 * 28))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", 2049, (n,), bytes([i % 10 for i in range(n)]))
    splits = datasets.mnist(tmp_path, False, seed=0)
    assert len(splits.train) == 6 and len(splits.test) == 3
    image, label = splits.train[1]
    assert image.shape == (1, 32, 32) and label == 1


def test_disk_datasets_explain_what_is_missing(tmp_path):
    with pytest.raises(UsageError, match="pass --data-dir"):
        datasets.cifar10(None, False, seed=0)
    with pytest.raises(UsageError, match="does not exist"):
        datasets.mnist(tmp_path / "nope", False, seed=0)
    with pytest.raises(UsageError, match="not found or corrupt under .*cifar-10-batches-py"):
        datasets.cifar10(tmp_path, False, seed=0)
    with pytest.raises(UsageError, match="train/ with one folder per class"):
        datasets.imagenet(tmp_path, False, seed=0)


def test_imagenet_image_folder(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            Image.new("RGB", (40, 30), (10, 200, 30)).save(folder / "a.png")
    splits = datasets.imagenet(tmp_path, False, seed=0)
    assert splits.num_classes == 2 and splits.image_size == 224
    assert splits.test[0][0].shape == (3, 224, 224)
