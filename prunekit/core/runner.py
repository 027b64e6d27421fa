"""Train one model with one optimizer and one pruner, and write an honest run directory.

Files in the run directory:

- ``config.yaml``: the resolved settings (written before training);
- ``metrics.jsonl``: one line per epoch, appended as epochs finish;
- ``timeline.jsonl``: memory samples, appended as they are taken;
- ``summary.json``: written atomically when the run completes. A run directory
  without it is incomplete.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from prunekit import __version__
from prunekit.core.config import ResolvedRun, RunConfig, validate
from prunekit.core.data import make_loader
from prunekit.core.environment import describe_environment
from prunekit.core.files import append_jsonl, write_json, write_yaml
from prunekit.core.ledger import memory_ledger
from prunekit.core.optim import TrainingOptimizer, parameter_groups
from prunekit.core.plugins import Plugins, get_plugins
from prunekit.core.sampling import SamplerUnavailable, SamplingThread
from prunekit.core.schedule import Schedule
from prunekit.core.targets import measure_sparsity, prunable_targets
from prunekit.errors import UsageError

TARGET_TOLERANCE = 0.005  # achieved sparsity within 0.5 percentage point counts as reached
WARMUP_FRACTION = 0.1
END_FRACTION = 0.8
UPDATES_ALONG_RAMP = 50


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


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
    name = f"{c.model}-{c.dataset}-{resolved.optimizer.name}-{resolved.pruner.name}-s{round(c.sparsity * 100)}-seed{c.seed}-{stamp}"
    return Path("runs") / name.replace(":", "_").replace("/", "_")


def check_out_dir(path: Path) -> None:
    """Fail early, with one line, if ``path`` cannot become a fresh run directory."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"Output directory {path} already exists and is not empty; choose another --out.")
    parent = path.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"Cannot write to --out {path}: {probe} is not a directory.")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        test = parent / f".prunekit-write-test-{time.time_ns()}"
        test.mkdir()
        test.rmdir()
    except OSError as exc:
        raise UsageError(f"Cannot write to --out {path}: {exc.strerror or exc}.") from None


def make_schedule(config: RunConfig, total_steps: int) -> Schedule:
    """The sparsity schedule, with defaults as fractions of the training steps."""
    warmup = config.warmup if config.warmup is not None else round(WARMUP_FRACTION * total_steps)
    end = config.prune_end if config.prune_end is not None else max(warmup + 1, round(END_FRACTION * total_steps))
    if end <= warmup:
        end = warmup + 1
    frequency = config.frequency or max(1, round((end - warmup) / UPDATES_ALONG_RAMP))
    return Schedule(config.schedule, config.sparsity, warmup, end, frequency)


@dataclass
class _Built:
    splits: Any
    model: torch.nn.Module
    targets: list
    pruner: Any
    optimizer: TrainingOptimizer
    train_loader: Any
    test_loader: Any


def build(resolved: ResolvedRun, device: torch.device) -> _Built:
    """Data, model, pruner and optimizer, in the order the protocol promises."""
    c = resolved.config
    data_dir = Path(c.data_dir) if c.data_dir else None
    splits = resolved.dataset.factory(data_dir, c.download, c.seed, **resolved.dataset_opts)
    extra = {"name": c.model} if "*" in resolved.model.name else {}
    model = resolved.model.factory(splits.num_classes, splits.in_channels, splits.image_size, **extra).to(device)
    targets = prunable_targets(model)
    pruner = resolved.pruner.factory(targets, **resolved.pruner_opts)
    pin = device.type == "cuda"
    train_loader = make_loader(splits.train, c.batch_size, shuffle=True, seed=c.seed, workers=c.workers, pin_memory=pin)
    test_loader = make_loader(splits.test, max(c.batch_size, 256), shuffle=False, seed=c.seed, workers=c.workers, pin_memory=pin)
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
    pruner.bind(optimizer.optimizer)
    return _Built(splits, model, targets, pruner, optimizer, train_loader, test_loader)


def start_samplers(resolved: ResolvedRun, plugins: Plugins, device: torch.device) -> tuple[dict, dict]:
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


@torch.no_grad()
def evaluate(model, loader, device, autocast) -> tuple[float, float]:
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast():
            logits = model(inputs)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        correct += (logits.argmax(1) == labels).sum()
        count += labels.numel()
    return loss_sum.item() / count, 100.0 * correct.item() / count


def _autocast_factory(config: RunConfig, device: torch.device):
    if not config.amp:
        return contextlib.nullcontext, None
    if device.type != "cuda":
        raise UsageError("--amp needs a CUDA/ROCm device; drop --amp or use --device cuda.")
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


EpochCallback = Callable[[dict], None]
StepCallback = Callable[[int, int], None]


def run(
    config: RunConfig,
    *,
    plugins: Plugins | None = None,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[Path, dict]:
    """Run one training job; return the run directory and its summary.

    Every UsageError is raised before the run directory is created.
    """
    started_at = time.perf_counter()
    plugins = plugins or get_plugins()
    warn = warn or (lambda message: print(f"Warning: {message}", file=sys.stderr))
    resolved = validate(config, plugins.registry)
    c = resolved.config
    device = resolve_device(c.device)
    autocast, scaler = _autocast_factory(c, device)
    out = Path(c.out) if c.out else default_run_dir(resolved)
    check_out_dir(out)
    seed_everything(c.seed)
    built = build(resolved, device)

    total_steps = c.epochs * len(built.train_loader)
    schedule = make_schedule(c, total_steps)
    warnings_list: list[str] = []
    prunes = resolved.pruner.name != "none" and c.sparsity > 0
    if prunes and schedule.end > total_steps:
        message = (
            f"pruning ramps until step {schedule.end} (warm-up {schedule.warmup}) but training has only "
            f"{total_steps} steps: the target sparsity {c.sparsity:g} will not be reached."
        )
        warnings_list.append(message)
        warn(message)

    resolved_settings = c.to_dict() | {
        "out": str(out),
        "pruner": resolved.pruner.name,
        "pruner_opts": resolved.pruner_opts,
        "optimizer_opts": resolved.optimizer_opts,
        "dataset_opts": resolved.dataset_opts,
        "lr": built.optimizer.lr,
        "weight_decay": built.optimizer.optimizer.param_groups[0].get("weight_decay"),
        "warmup": schedule.warmup,
        "prune_end": schedule.end,
        "frequency": schedule.frequency,
    }
    samplers, skipped = start_samplers(resolved, plugins, device)
    resolved_settings["samplers"] = sorted(samplers)
    sampling = SamplingThread(samplers, c.sample_interval, out / "timeline.jsonl")
    model, pruner, opt = built.model, built.pruner, built.optimizer
    step = 0
    updates = 0
    train_time = eval_time = 0.0
    history: list[dict] = []
    try:  # from here on, samplers are always stopped (sampling.stop releases them)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"Cannot create --out {out}: {exc.strerror or exc}.") from None
        write_yaml(out / "config.yaml", resolved_settings)
        sampling.start()
        with open(out / "metrics.jsonl", "w", encoding="utf-8") as metrics_file:
            for epoch in range(1, c.epochs + 1):
                sampling.set_phase("train")
                model.train()
                epoch_start = time.perf_counter()
                loss_sum = torch.zeros((), device=device)
                correct = torch.zeros((), device=device, dtype=torch.long)
                seen = 0
                for inputs, labels in built.train_loader:
                    inputs = inputs.to(device, non_blocking=True)
                    labels = labels.to(device, non_blocking=True)
                    opt.optimizer.zero_grad(set_to_none=True)
                    with autocast():
                        logits = model(inputs)
                        loss = F.cross_entropy(logits.float(), labels)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.unscale_(opt.optimizer)
                    else:
                        loss.backward()
                    step += 1
                    sampling.step = step
                    pruner.before_step(step)
                    opt.process_gradients(step)
                    if scaler is not None:
                        scaler.step(opt.optimizer)
                        scaler.update()
                    else:
                        opt.step()
                    opt.after_step(step)
                    if prunes and schedule.is_update_step(step):
                        if not torch.isfinite(loss):  # scores of NaN weights are meaningless
                            raise TrainingDiverged(f"training loss became {loss.item()} at step {step}")
                        sampling.set_phase("mask_update")
                        pruner.update_masks(schedule.sparsity_at(step), step)
                        updates += 1
                        sampling.set_phase("train")
                    pruner.enforce()
                    loss_sum += loss.detach() * labels.numel()
                    correct += (logits.detach().argmax(1) == labels).sum()
                    seen += labels.numel()
                    if on_step is not None:
                        on_step(step, total_steps)
                train_loss = loss_sum.item() / seen
                train_acc = 100.0 * correct.item() / seen
                if not math.isfinite(train_loss):
                    raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch}")
                lr = opt.lr
                opt.end_epoch(epoch)
                train_seconds = time.perf_counter() - epoch_start
                train_time += train_seconds

                sampling.set_phase("eval")
                eval_start = time.perf_counter()
                test_loss, test_acc = evaluate(model, built.test_loader, device, autocast)
                eval_time += time.perf_counter() - eval_start
                sparsity = measure_sparsity(model, built.targets)
                record = {
                    "epoch": epoch,
                    "step": step,
                    "train_loss": train_loss,
                    "train_accuracy": train_acc,
                    "test_loss": test_loss,
                    "test_accuracy": test_acc,
                    "sparsity": sparsity["prunable"],
                    "sparsity_all": sparsity["all"],
                    "scheduled_sparsity": schedule.sparsity_at(step) if prunes else 0.0,
                    "lr": lr,
                    "epoch_time_s": train_seconds,
                }
                append_jsonl(metrics_file, record)
                history.append(record)
                if on_epoch is not None:
                    on_epoch(record)
    finally:
        sampling.stop()

    sparsity = measure_sparsity(model, built.targets)
    ledger = memory_ledger(model, opt.optimizer, pruner.state_tensors(), built.targets)
    target = c.sparsity if prunes else 0.0
    best = max(history, key=lambda r: r["test_accuracy"])
    summary = {
        "status": "completed",
        "run_dir": str(out),
        "model": c.model,
        "dataset": c.dataset,
        "dataset_options": resolved.dataset_opts,
        "optimizer": resolved.optimizer.name,
        "optimizer_options": resolved.optimizer_opts,
        "lr": resolved_settings["lr"],
        "weight_decay": resolved_settings["weight_decay"],
        "pruner": resolved.pruner.name,
        "pruner_options": resolved.pruner_opts,
        "schedule": {
            "kind": schedule.kind,
            "warmup": schedule.warmup,
            "end": schedule.end,
            "frequency": schedule.frequency,
            "mask_updates": updates,
        },
        "seed": c.seed,
        "epochs": c.epochs,
        "batch_size": c.batch_size,
        "steps": step,
        "amp": c.amp,
        "final_test_accuracy": history[-1]["test_accuracy"],
        "best_test_accuracy": best["test_accuracy"],
        "best_epoch": best["epoch"],
        "final_train_loss": history[-1]["train_loss"],
        "final_test_loss": history[-1]["test_loss"],
        "target_sparsity": target,
        "achieved_sparsity": sparsity["prunable"],
        "achieved_sparsity_all_parameters": sparsity["all"],
        "sparsity_counts": sparsity,
        "target_reached": abs(sparsity["prunable"] - target) <= TARGET_TOLERANCE,
        "parameter_counts": {
            "total": ledger["parameter_count"],
            "prunable": ledger["prunable_weights"],
        },
        "wall_time_s": time.perf_counter() - started_at,
        "train_time_s": train_time,
        "eval_time_s": eval_time,
        "mean_step_time_s": train_time / step if step else 0.0,
        "ledger": ledger,
        "samplers": sampling.summary(),
        "samplers_skipped": skipped,
        "warnings": warnings_list,
        "environment": describe_environment(
            device, {i.distribution: i.version for i in plugins.infos.values() if i.distribution != "prunekit"}
        ),
        "prunekit_version": __version__,
    }
    write_json(out / "summary.json", summary)
    return out, summary
