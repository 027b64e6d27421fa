"""The data path: does loading ever starve training? CPU, generated data in the real file formats.

1. LeNet-5 on MNIST-shaped data (60,000 x 28x28 generated here, written as MNIST
   idx files, read by ``--dataset mnist``): one epoch of ``prunekit.core.run.runner.run``
   (pruner none) against a plain loop over pre-built normalised tensors (same model,
   optimizer, batch size). Ratio = plain epoch time / prunekit epoch time (goal
   >= 0.95); data waiting from the summary (goal < 5% of the epoch).
2. ResNet-18 on CIFAR-shaped data (written as CIFAR-10 pickles, crop+flip
   augmentation): data waiting as a fraction of the step time (goal < 5%).

For both, ``loader_only_s`` is the time to iterate the training loader once with
no model (what the data path costs by itself); it can be measured on any commit,
so it gives the before/after comparison. Sides are interleaved; medians reported.

    python benchmarks/bench_data.py [--repeats 3] [--mnist-size 60000] [--cifar-size 1280]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _quick import parse_args

from prunekit.builtin.datasets import MNIST_NORM
from prunekit.builtin.models import lenet5
from prunekit.core.config.settings import RunConfig
from prunekit.core.plugins.loading import get_plugins
from prunekit.core.run.building import build, resolve_device
from prunekit.core.run.runner import run
from prunekit.core.run.validation import validate
from prunekit.core.train.optim import parameter_groups
from prunekit.testing.datafiles import write_cifar, write_mnist


def trust_generated_cifar() -> None:
    """Generated CIFAR files have no official checksums; the per-image torchvision path (before the change) checks them."""
    import os

    from torchvision.datasets import CIFAR10, cifar

    CIFAR10._check_integrity = lambda self: True
    cifar.check_integrity = lambda path, md5=None: os.path.exists(path)


def generated(n: int, shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable uint8 images: a random prototype per class plus noise."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(10, *shape, generator=g) * 255
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.empty(n, *shape, dtype=torch.uint8)
    for a in range(0, n, 10_000):
        b = min(a + 10_000, n)
        noise = torch.randn(b - a, *shape, generator=g) * 40
        images[a:b] = (prototypes[labels[a:b]] + noise).clamp_(0, 255).to(torch.uint8)
    return images, labels


def config(root: Path, out: Path, **kw) -> RunConfig:
    return RunConfig(data_dir=str(root), pruner="none", epochs=1, device="cpu", samplers=[], out=str(out), quiet=True, **kw)


def prunekit_epoch(cfg: RunConfig) -> dict:
    summary = run(cfg, warn=lambda message: None)[1]
    return {"epoch_s": summary["train_time_s"], "data_wait_s": summary.get("data_wait_s"), "steps": summary["steps"]}


def loader_only(cfg: RunConfig) -> float:
    """Seconds to iterate the training loader once, as the run builds it, with no training."""
    resolved = validate(cfg, get_plugins().registry)
    loader = build(resolved, resolve_device("cpu")).train_loader
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def plain_epoch(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int) -> float:
    """One epoch of a hand-written loop over pre-built normalised tensors."""
    torch.manual_seed(seed)
    model = lenet5(10, 1, 32)
    opt = torch.optim.AdamW(parameter_groups(model, 1e-4), lr=1e-3, fused=True)  # as prunekit's adamw on CPU
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    model.train()
    start = time.perf_counter()
    for i in range(0, len(labels), batch_size):
        index = order[i : i + batch_size]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs[index]), labels[index]).backward()
        opt.step()
    return time.perf_counter() - start


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mnist-size", type=int, default=60_000)
    parser.add_argument("--mnist-batch-size", type=int, default=512, help="the seed's LeNet-5/MNIST batch")
    parser.add_argument("--cifar-size", type=int, default=1280)
    parser.add_argument("--cifar-batch-size", type=int, default=32)
    args = parse_args(parser, quick={"repeats": 1, "mnist_size": 60_000, "cifar_size": 160})
    torch.set_num_threads(1)
    trust_generated_cifar()
    result: dict = {"threads": 1, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train, test = generated(args.mnist_size, (28, 28), 0), generated(1000, (28, 28), 1)
        root = write_mnist(tmp / "mnist", train, test)
        from torchvision.transforms import functional as TF

        inputs = TF.resize(train[0].unsqueeze(1), [32, 32], antialias=True).float().div_(255)
        inputs = inputs.sub_(MNIST_NORM[0][0]).div_(MNIST_NORM[1][0])  # pre-built, as a plain loop would have it
        bs = args.mnist_batch_size
        plain, ours, loader = [], [], []
        for r in range(args.repeats):
            plain.append(plain_epoch(inputs, train[1], bs, r))
            cfg = config(root, tmp / f"lenet-{r}", model="lenet5", dataset="mnist", batch_size=bs, seed=r)
            ours.append(prunekit_epoch(cfg))
            loader.append(loader_only(config(root, tmp / "unused", model="lenet5", dataset="mnist", batch_size=bs, seed=r)))
        p, e = statistics.median(plain), median(ours, "epoch_s")
        wait = median(ours, "data_wait_s")
        result["lenet5_mnist"] = {
            "images": args.mnist_size,
            "batch_size": bs,
            "plain_epoch_s": round(p, 3),
            "prunekit_epoch_s": round(e, 3),
            "epoch_time_ratio_plain_over_prunekit": round(p / e, 4),
            "goal_ratio": ">= 0.95",
            "data_wait_s": None if wait is None else round(wait, 4),
            "data_wait_fraction": None if wait is None else round(wait / e, 4),
            "goal_data_wait_fraction": "< 0.05",
            "loader_only_s": round(statistics.median(loader), 3),
        }

        train, test = generated(args.cifar_size, (3, 32, 32), 2), generated(64, (3, 32, 32), 3)
        root = write_cifar(tmp / "cifar", train, test)
        bs = args.cifar_batch_size
        ours, loader = [], []
        for r in range(args.repeats):
            cfg = config(
                root, tmp / f"resnet-{r}", model="resnet18", dataset="cifar10", batch_size=bs, seed=r, optimizer="sgd", lr=0.1
            )
            ours.append(prunekit_epoch(cfg))
            loader.append(loader_only(config(root, tmp / "unused", model="resnet18", dataset="cifar10", batch_size=bs, seed=r)))
        e, wait, steps = median(ours, "epoch_s"), median(ours, "data_wait_s"), ours[0]["steps"]
        result["resnet18_cifar10"] = {
            "images": args.cifar_size,
            "batch_size": bs,
            "steps": steps,
            "step_s": round(e / steps, 4),
            "data_wait_per_step_s": None if wait is None else round(wait / steps, 5),
            "data_wait_fraction": None if wait is None else round(wait / e, 4),
            "goal_data_wait_fraction": "< 0.05",
            "loader_only_per_step_s": round(statistics.median(loader) / steps, 5),
            "loader_only_fraction_of_step": round(statistics.median(loader) / e, 4),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
