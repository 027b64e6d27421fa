"""The run's summary: what ran, what it achieved, and what it kept in memory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from prunekit import __version__
from prunekit.core.distributed import ddp as distributed
from prunekit.core.measure.flops import TrainingFlops, flops_section
from prunekit.core.measure.ledger import memory_ledger
from prunekit.core.run.context import RunContext, Training
from prunekit.core.run.environment import describe_environment
from prunekit.core.rundir.layout import SCHEMA_VERSION, Summary
from prunekit.core.rundir.outcomes import Outcomes
from prunekit.core.sparsity.targets import measure_sparsity
from prunekit.core.train.parts import Built
from prunekit.core.train.training import Progress

TARGET_TOLERANCE = 0.005  # achieved sparsity within 0.5 percentage point counts as reached


def build_summary(
    ctx: RunContext,
    training: Training,
    *,
    out: Path,
    outcomes: Outcomes,
    settings: dict[str, Any],
    progress: Progress,
    samplers: dict[str, Any],
    samplers_skipped: dict[str, str],
    warnings: list[str],
    started_at: float,
) -> Summary:
    """The ``summary.json`` record of a completed run (see :class:`prunekit.core.rundir.layout.Summary`)."""
    resolved, built, schedule = ctx.resolved, training.built, training.schedule
    c = resolved.config
    history = progress.history
    sparsity = measure_sparsity(built.model, built.targets)
    pruner = built.pruner
    ledger = memory_ledger(
        built.model, built.optimizer.optimizer, pruner.state_tensors(), built.targets, pruner.transient_bytes()
    )
    target = c.sparsity if training.prunes else 0.0
    structure = getattr(pruner, "structure_summary", lambda: None)()  # N:M: counted over the layers that take it
    counted = structure["achieved_sparsity_structured"] if structure else sparsity["prunable"]
    best = max(history, key=lambda r: r["test_accuracy"])
    steps = progress.step
    plugin_versions = {i.distribution: i.version for i in ctx.plugins.infos.values() if i.distribution != "prunekit"}
    samplers, per_rank = distributed.sampler_summaries(built.dist, samplers)
    spread = built.dist.describe(c.batch_size) | {
        "ledger_scope": "per process: each of the world_size processes holds the ledger's bytes",
    }
    if per_rank is not None:
        spread["samplers_per_rank"] = per_rank
    record: Summary = {
        "schema_version": SCHEMA_VERSION,
        "status": "completed",
        "run_dir": str(out),
        "model": c.model,
        "dataset": c.dataset,
        "model_options": resolved.model_opts,
        "dataset_options": resolved.dataset_opts,
        "optimizer": resolved.optimizer.name,
        "optimizer_options": resolved.optimizer_opts,
        "lr": settings["lr"],
        "weight_decay": settings["weight_decay"],
        "pruner": resolved.pruner.name,
        "pruner_options": resolved.pruner_opts,
        "schedule": {
            "kind": schedule.kind,
            "warmup": schedule.warmup,
            "end": schedule.end,
            "frequency": schedule.frequency,
            "mask_updates": progress.mask_updates,
        },
        "seed": c.seed,
        "epochs": c.epochs,
        "batch_size": c.batch_size,
        "steps": steps,
        "skipped_steps": progress.skipped_steps,
        "amp": c.amp,
        "compile": c.compile,
        "channels_last": c.channels_last,
        "final_test_accuracy": history[-1]["test_accuracy"],
        "best_test_accuracy": best["test_accuracy"],
        "best_epoch": best["epoch"],
        "final_train_loss": history[-1]["train_loss"],
        "final_test_loss": history[-1]["test_loss"],
        "test_examples": outcomes.n,
        "test_set_fingerprint": outcomes.fingerprint,
        "target_sparsity": target,
        "achieved_sparsity": sparsity["prunable"],
        "achieved_sparsity_all_parameters": sparsity["all"],
        "sparsity_counts": sparsity,
        "target_reached": abs(counted - target) <= TARGET_TOLERANCE,
        "parameter_counts": {"total": ledger["parameter_count"], "prunable": ledger["prunable_weights"]},
        "wall_time_s": time.perf_counter() - started_at,
        "train_time_s": progress.train_time,
        "eval_time_s": progress.eval_time,
        "mean_step_time_s": progress.train_time / batches if (batches := steps + progress.skipped_steps) else 0.0,
        "data_wait_s": progress.data_wait_time,
        "data_wait_fraction": progress.data_wait_time / progress.train_time if progress.train_time else 0.0,
        "data_loader": dict(getattr(built.train_loader, "info", {"kind": type(built.train_loader).__name__})),
        "ledger": ledger,
        "samplers": samplers,
        "samplers_skipped": samplers_skipped,
        "warnings": warnings,
        "distributed": spread,
        "environment": describe_environment(ctx.device, plugin_versions),
        "prunekit_version": __version__,
        "trackers": {},  # filled by the runner once the trackers have finished
        "flops": flops_section(
            built.model, built.targets, _example(built), TrainingFlops(built.targets, progress.training_flops)
        ),
    }
    if structure:
        record["structure"] = structure
    return record


def _example(built: Built) -> torch.Tensor:
    """One test input on the model's device, for counting FLOPs."""
    inputs: torch.Tensor = next(iter(built.test_loader))[0]
    parameter = next(built.model.parameters())
    return inputs[:1].to(parameter.device)
