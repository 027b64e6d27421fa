"""Everything a run needs before its first step: device, seeds, run directory, schedule,
data, model, pruner, optimizer and samplers."""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path
from typing import Any

import torch

from prunekit.core.config.settings import RunConfig
from prunekit.core.data import sharded
from prunekit.core.data.loaders import default_workers, make_loader
from prunekit.core.distributed import ddp as distributed
from prunekit.core.distributed.ddp import SINGLE, Dist
from prunekit.core.measure.sampling import Sampler, SamplerUnavailable
from prunekit.core.plugins.loading import Plugins
from prunekit.core.run.validation import ResolvedRun
from prunekit.core.sparsity.schedule import Schedule
from prunekit.core.sparsity.targets import prunable_targets
from prunekit.core.train.forward import forward_module
from prunekit.core.train.optim import TrainingOptimizer, parameter_groups
from prunekit.core.train.parts import Autocast, Built
from prunekit.errors import UsageError

WARMUP_FRACTION = 0.1
END_FRACTION = 0.8
UPDATES_ALONG_RAMP = 50


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(f"Device '{spec}' requested but no CUDA/ROCm GPU is available; use --device cpu or auto.")
    device = torch.device(spec)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"Device '{spec}' does not exist; this machine has {torch.cuda.device_count()} GPU(s).")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:
        pass


def default_run_dir(resolved: ResolvedRun) -> Path:
    c = resolved.config
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = (
        f"{c.model}-{c.dataset}-{resolved.optimizer.name}-{resolved.pruner.name}-s{round(c.sparsity * 100)}-seed{c.seed}-{stamp}"
    )
    return Path("runs") / name.replace(":", "_").replace("/", "_")


def check_out_dir(path: Path) -> None:
    """Fail early, with one line, if ``path`` cannot become a fresh run directory."""
    try:
        _check_out_dir(path)
    except OSError as exc:  # a name too long, a loop of links, ...
        raise UsageError(f"Cannot use --out {path}: {exc.strerror or exc}.") from None


def _check_out_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} is an existing file, not a directory; choose another --out.")
    if path.exists() and any(path.iterdir()):
        raise UsageError(f"Output directory {path} already exists and is not empty; choose another --out.")
    parent = path.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"Cannot write to --out {path}: {probe} is not a directory.")
    try:  # a probe in the nearest existing folder: nothing is left behind when the run is refused later
        test = (path if path.is_dir() else probe) / f".prunekit-write-test-{time.time_ns()}"
        test.mkdir()
        test.rmdir()
    except OSError as exc:
        raise UsageError(f"Cannot write to --out {path}: {exc.strerror or exc}.") from None


def make_schedule(config: RunConfig, total_steps: int) -> Schedule:
    """The sparsity schedule, with defaults as fractions of the training steps.

    ``config`` comes from :func:`prunekit.core.run.validation.validate`, which names the schedule.
    An explicit ``prune_end`` at or before the warm-up is refused (UsageError), never moved.
    """
    if config.schedule is None:
        raise ValueError("make_schedule needs a validated config (schedule resolved)")
    if config.schedule == "constant":
        return Schedule.constant(config.sparsity)
    warmup = config.warmup if config.warmup is not None else round(WARMUP_FRACTION * total_steps)
    if config.prune_end is not None and config.prune_end <= warmup:
        where = (
            f"--warmup {warmup}"
            if config.warmup is not None
            else f"the default warm-up, step {warmup} (10% of {total_steps} steps)"
        )
        raise UsageError(
            f"Prune end ({config.prune_end}) must come after the warm-up: {where}; give a later --prune-end or a smaller --warmup."
        )
    end = config.prune_end if config.prune_end is not None else max(warmup + 1, round(END_FRACTION * total_steps))
    frequency = config.frequency or max(1, round((end - warmup) / UPDATES_ALONG_RAMP))
    return Schedule(config.schedule, config.sparsity, warmup, end, frequency)


def autocast_factory(config: RunConfig, device: torch.device) -> tuple[Autocast, torch.amp.GradScaler | None]:
    """The autocast context for forward passes and, under fp16, the GradScaler."""
    if not config.amp:
        return contextlib.nullcontext, None
    if device.type != "cuda":
        raise UsageError("--amp needs a CUDA/ROCm device; drop --amp or use --device cuda.")
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def build(resolved: ResolvedRun, device: torch.device, scaler: torch.amp.GradScaler | None = None, dist: Dist = SINGLE) -> Built:
    """Data, model, pruner and optimizer, in the order the protocol promises."""
    c = resolved.config
    data_dir = Path(c.data_dir) if c.data_dir else None
    splits = resolved.dataset.factory(data_dir, c.download, c.seed, **resolved.dataset_opts)
    extra = {"name": c.model} if "*" in resolved.model.name else {}
    model = resolved.model.factory(splits.num_classes, splits.in_channels, splits.image_size, **extra, **resolved.model_opts)
    model = model.to(device)
    if c.channels_last:
        model.to(memory_format=torch.channels_last)  # 4-d weights only; the same Parameter objects
    check_model_takes_data(model, splits, c.model, c.dataset, device)
    targets = prunable_targets(model)
    pruner = resolved.pruner.factory(targets, **resolved.pruner_opts)
    train_loader: Any  # TensorBatches, ShardedBatches or DataLoader: sized iterables of batches, with ``info``
    if dist.enabled:  # this rank's share of each epoch's seeded order; disjoint test shards
        workers = default_workers() if c.workers is None else c.workers
        train_loader = sharded.train_loader(splits.train, c.batch_size, dist, c.seed, device, workers)
    else:
        train_loader = make_loader(splits.train, c.batch_size, shuffle=True, seed=c.seed, device=device, workers=c.workers)
    test = sharded.eval_shard(splits.test, dist)
    test_loader = make_loader(test, max(c.batch_size, 256), shuffle=False, seed=c.seed, device=device, workers=c.workers)
    meta = resolved.optimizer.metadata
    weight_decay = c.weight_decay
    if weight_decay is None:
        weight_decay = meta["weight_decay"] if meta["weight_decay"] is not None else resolved.model.metadata["weight_decay"]
    lr = c.lr if c.lr is not None else meta["lr"]
    made = resolved.optimizer.factory(
        parameter_groups(model, weight_decay),
        lr=lr,
        weight_decay=weight_decay,
        epochs=c.epochs,
        steps_per_epoch=len(train_loader),
        **resolved.optimizer_opts,
    )
    optimizer = made if isinstance(made, TrainingOptimizer) else TrainingOptimizer(made)
    optimizer.scaler = scaler
    pruner.bind(optimizer.optimizer)
    trainer = distributed.wrap(dist, model, device) if dist.enabled else None
    trainer = forward_module(model, trainer, c.channels_last, c.compile)
    return Built(splits, model, targets, pruner, optimizer, train_loader, test_loader, dist, trainer)


@torch.no_grad()
def check_model_takes_data(model: torch.nn.Module, splits: Any, model_name: str, dataset: str, device: torch.device) -> None:
    """One forward pass of two test examples (eval mode, no RNG drawn): a model that cannot take
    the data, or gives the wrong output shape, is a UsageError before anything is written."""
    n = min(2, len(splits.test))
    examples = [splits.test[i] for i in range(n)]
    inputs = torch.stack([torch.as_tensor(x) for x, _ in examples]).to(device)
    training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            logits = model(inputs)
    except (RuntimeError, ValueError, TypeError, AssertionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(
            f"Model '{model_name}' cannot take {dataset} inputs of shape {tuple(inputs.shape[1:])}: {first}"
        ) from None
    finally:
        model.train(training)
    expected = (n, splits.num_classes)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise UsageError(
            f"Model '{model_name}' gives outputs of shape {got} for {dataset}; expected {expected} (batch, classes)."
        )


def start_samplers(resolved: ResolvedRun, plugins: Plugins, device: torch.device) -> tuple[dict[str, Sampler], dict[str, str]]:
    """Start the chosen samplers; ``auto`` adds every one that works here."""
    chosen = {e.name: e for e in resolved.samplers}
    skipped: dict[str, str] = {}
    auto = "auto" in resolved.config.samplers
    if auto:
        for name, entry in plugins.registry.entries["samplers"].items():
            chosen.setdefault(name, entry)
    started: dict[str, Any] = {}
    try:
        for name, entry in chosen.items():
            sampler = entry.factory(device)
            try:
                sampler.start()
            except SamplerUnavailable as exc:
                if auto and entry not in resolved.samplers:
                    skipped[name] = str(exc)
                    continue
                raise UsageError(str(exc)) from None
            started[name] = sampler
    except BaseException:
        for sampler in started.values():
            sampler.stop()
        raise
    return started, skipped
