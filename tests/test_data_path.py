"""The in-memory data path: decoded uint8 images, batched seeded augmentation, loaders."""

from pathlib import Path

import pytest
import torch
from scipy import stats

from prunekit.builtin import datasets
from prunekit.core.data.augment import crop_flip, draw_crop_flip
from prunekit.core.data.loaders import ImageTensors, TensorBatches, default_workers, make_loader
from prunekit.testing.datafiles import write_cifar, write_mnist


def _coded_images(n: int, size: int = 32) -> torch.Tensor:
    """Channel 0 holds row + 1, channel 1 holds column + 1 (0 is the padding)."""
    rows = torch.arange(1, size + 1, dtype=torch.uint8).view(size, 1).expand(size, size)
    return torch.stack([rows, rows.t()]).expand(n, 2, size, size).contiguous()


def test_crop_offsets_and_flips_are_uniform_and_crops_exact():
    n, pad = 45_000, 4
    out = crop_flip(_coded_images(n), pad, draw_crop_flip(n, pad, True, torch.Generator().manual_seed(0)))
    row16, col16, col17 = out[:, 0, 16, 16].long(), out[:, 1, 16, 16].long(), out[:, 1, 16, 17].long()
    flipped = col17 < col16
    top = row16 - 1 - 16 + pad
    left = torch.where(flipped, col16 - 1 - 15 + pad, col16 - 1 - 16 + pad)
    for offsets in (top, left):
        counts = torch.bincount(offsets, minlength=2 * pad + 1)
        assert len(counts) == 2 * pad + 1  # offsets exactly 0..8
        assert stats.chisquare(counts.numpy()).pvalue > 1e-3
    assert stats.binomtest(int(flipped.sum()), n, 0.5).pvalue > 1e-3
    assert stats.chisquare(torch.bincount(top * 2 + flipped.long(), minlength=18).numpy()).pvalue > 1e-3  # independent
    padded = torch.nn.functional.pad(_coded_images(1)[0], (pad,) * 4)
    for b in range(200):  # every pixel is the torchvision crop (then mirror) of the padded image
        crop = padded[:, top[b] : top[b] + 32, left[b] : left[b] + 32]
        assert torch.equal(out[b], crop.flip(2) if flipped[b] else crop)


def test_normalisation_is_torchvision_to_tensor_and_normalize():
    from torchvision import transforms

    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    data = ImageTensors(images, torch.zeros(16), datasets.CIFAR10_NORM[0], datasets.CIFAR10_NORM[1])
    reference = transforms.Compose([transforms.ToPILImage(), transforms.ToTensor(), transforms.Normalize(*datasets.CIFAR10_NORM)])
    expected = torch.stack([reference(im) for im in images])
    assert torch.equal(data.transform(images, None), expected)


def test_augmented_statistics_match_torchvision():
    from torchvision import transforms

    g = torch.Generator().manual_seed(2)
    images = (torch.rand(400, 3, 32, 32, generator=g) * torch.tensor([200.0, 120, 60]).view(1, 3, 1, 1)).to(torch.uint8)
    mean, std = datasets.CIFAR10_NORM
    ours = ImageTensors(images, torch.zeros(400), mean, std, crop_padding=4, flip=True)
    batches = torch.cat([ours.transform(images, ours.draw(len(images), g)) for _ in range(5)])
    torch.manual_seed(3)
    pipeline = transforms.Compose(
        [
            transforms.ToPILImage(),
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    reference = torch.stack([pipeline(im) for _ in range(5) for im in images])
    for dims in ((0, 2, 3), (0, 1, 2)):  # per channel; per column (the flip's symmetry)
        assert torch.allclose(batches.mean(dims), reference.mean(dims), atol=0.02)
        assert torch.allclose(batches.std(dims), reference.std(dims), atol=0.02)
    assert abs(float(_edge(batches)) - float(_edge(reference))) < 0.01  # zero padding shows at the border equally often


def _edge(x):
    return (x[:, :, :4] == x.amin()).float().mean()


def _split(n, shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_mnist_idx_files_decoded_once_and_resized_once(tmp_path):
    import numpy as np
    from PIL import Image

    train, test = _split(12, (28, 28), 0), _split(5, (28, 28), 1)
    splits = datasets.mnist(write_mnist(tmp_path, train, test), False, seed=0)
    assert isinstance(splits.train, ImageTensors) and splits.train.images.dtype == torch.uint8
    assert splits.train.images.shape == (12, 1, 32, 32) and len(splits.test) == 5
    assert torch.equal(splits.train.labels, train[1]) and (splits.train.crop_padding, splits.train.flip) == (0, False)
    pil = torch.stack([torch.tensor(np.array(Image.fromarray(im.numpy()).resize((32, 32), Image.BILINEAR))) for im in train[0]])
    assert int((splits.train.images[:, 0].int() - pil.int()).abs().max()) <= 1  # PIL's Resize(32), within one grey level


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_pickles_read_into_uint8_with_crop_and_flip(tmp_path, classes):
    train, test = _split(10, (3, 32, 32), 2), _split(4, (3, 32, 32), 3)
    train = (train[0], train[1] * (classes // 10))
    write_cifar(tmp_path, train, test, classes)
    splits = (datasets.cifar10 if classes == 10 else datasets.cifar100)(tmp_path, False, seed=0)
    assert splits.num_classes == classes and splits.in_channels == 3
    assert torch.equal(splits.train.images, train[0]) and torch.equal(splits.train.labels, train[1])
    assert torch.equal(splits.test.images, test[0])
    assert (splits.train.crop_padding, splits.train.flip) == (4, True) and splits.test.crop_padding == 0


def test_corrupt_cifar_is_one_clear_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(datasets.UsageError, match="not found or corrupt under .*cifar-10-batches-py"):
        datasets.cifar10(tmp_path, False, seed=0)


def test_same_seed_same_batches_and_labels_follow_images():
    images, labels = _split(50, (3, 8, 8), 4)
    data = ImageTensors(images, labels, (0.5,) * 3, (0.25,) * 3, crop_padding=2, flip=True)
    first = [(x.clone(), y.clone()) for x, y in TensorBatches(data, 16, True, seed=7)]
    again = list(TensorBatches(data, 16, True, seed=7))
    other = list(TensorBatches(data, 16, True, seed=8))
    assert [len(y) for _, y in first] == [16, 16, 16, 2]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(first[0][1], other[0][1])
    ids = torch.arange(50)
    tagged = ImageTensors(ids.to(torch.uint8).view(50, 1, 1, 1).expand(50, 1, 4, 4).contiguous(), ids, (0.0,), (1 / 255,))
    for x, y in TensorBatches(tagged, 16, True, seed=7):  # each image stays with its label
        assert torch.equal(x[:, 0, 0, 0].round().long(), y)
    epochs = TensorBatches(data, 50, True, seed=7)
    assert not torch.equal(next(iter(epochs))[1], next(iter(epochs))[1])  # a new order each epoch


def test_loaders_record_what_they_chose(tmp_path):
    images, labels = _split(8, (1, 4, 4), 5)
    loader = make_loader(ImageTensors(images, labels, (0.1,), (0.3,)), 4, shuffle=False, seed=0, device="cpu")
    assert loader.info["kind"] == "tensors" and loader.info["placement"] == "device" and loader.info["bytes"] == 8 * 16 + 8 * 8
    folder = make_loader(torch.utils.data.Subset(torch.arange(10), range(10)), 4, shuffle=True, seed=0, device="cpu")
    assert folder.info == {
        "kind": "dataloader",
        "placement": "host",
        "workers": default_workers(),
        "pin_memory": False,
        "persistent_workers": True,
    }
    assert 1 <= default_workers() <= 8
    explicit = make_loader(torch.utils.data.Subset(torch.arange(10), range(10)), 4, shuffle=True, seed=0, workers=0)
    assert explicit.num_workers == 0 and explicit.info["persistent_workers"] is False


def test_a_run_records_data_waiting_and_the_loader(tmp_path):
    from prunekit.core.config.settings import RunConfig
    from prunekit.core.run.runner import run

    root = write_mnist(tmp_path / "data", _split(64, (28, 28), 6), _split(16, (28, 28), 7))
    out, summary = run(
        RunConfig(
            dataset="mnist",
            data_dir=str(root),
            pruner="none",
            epochs=2,
            batch_size=16,
            device="cpu",
            samplers=[],
            out=str(tmp_path / "run"),
            quiet=True,
        )
    )
    assert summary["data_loader"] == {
        "kind": "tensors",
        "placement": "device",
        "bytes": 64 * 1024 + 64 * 8,
        "workers": 0,
        "pin_memory": False,
        "persistent_workers": False,
    }
    assert 0 < summary["data_wait_s"] < summary["train_time_s"]
    assert summary["data_wait_fraction"] == summary["data_wait_s"] / summary["train_time_s"]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    waits = [__import__("json").loads(line)["data_wait_s"] for line in lines]
    assert len(waits) == 2 and abs(sum(waits) - summary["data_wait_s"]) < 1e-9


def test_written_cifar_files_are_what_torchvision_reads(tmp_path, monkeypatch):
    from torchvision import datasets as tv

    train, test = _split(10, (3, 32, 32), 8), _split(3, (3, 32, 32), 9)
    write_cifar(tmp_path, train, test)
    monkeypatch.setattr(tv.CIFAR10, "_check_integrity", lambda self: True)  # generated files have no official checksums
    monkeypatch.setattr(tv.cifar, "check_integrity", lambda path, md5=None: Path(path).exists())
    theirs = tv.CIFAR10(str(tmp_path), train=True)
    assert torch.equal(torch.from_numpy(theirs.data).permute(0, 3, 1, 2), train[0]) and theirs.targets == train[1].tolist()
    assert len(theirs.classes) == 10


def test_ddp_shards_of_images_are_augmented_reproducibly_and_eval_shards_stay_tensors():
    from prunekit.core.data.sharded import ShardedBatches, eval_shard
    from prunekit.core.distributed.ddp import Dist

    images, labels = _split(20, (1, 6, 6), 10)
    data = ImageTensors(images, labels, (0.5,), (0.2,), crop_padding=2, flip=True)
    ranks = [ShardedBatches(data, 4, Dist(rank, 2, rank), seed=3) for rank in range(2)]
    first = [list(r) for r in ranks]
    again = list(ShardedBatches(data, 4, Dist(0, 2, 0), seed=3))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first[0], again))
    assert sorted(torch.cat([y for r in first for _, y in r]).tolist()) == sorted(labels.tolist())
    assert ranks[0].info["kind"] == "tensors" and first[0][0][0].dtype == torch.float32
    shard = eval_shard(ImageTensors(images, labels, (0.5,), (0.2,)), Dist(1, 3, 1))
    assert isinstance(shard, ImageTensors) and torch.equal(shard.labels, labels[1::3])
