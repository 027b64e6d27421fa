"""Train one model with one optimizer and one pruner, and write an honest run directory.

``run()`` only orchestrates: :mod:`~prunekit.core.run.building` makes what the run
needs, :mod:`~prunekit.core.run.epochs` trains, evaluates and checkpoints each epoch,
:mod:`~prunekit.core.run.summary` describes the result, :mod:`~prunekit.core.run.failure`
records a failure, :mod:`~prunekit.core.run.resume` continues a stopped run, and
:mod:`~prunekit.core.rundir.layout` owns every file written.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from prunekit.core.config.settings import RunConfig
from prunekit.core.distributed import ddp as distributed
from prunekit.core.distributed import rank_state
from prunekit.core.measure.sampling import SamplingThread
from prunekit.core.plugins.loading import Plugins, get_plugins
from prunekit.core.run import trackers as run_trackers
from prunekit.core.run.building import (
    autocast_factory,
    build,
    check_out_dir,
    default_run_dir,
    make_schedule,
    resolve_device,
    seed_everything,
    start_samplers,
)
from prunekit.core.run.context import EpochCallback, RunContext, Training
from prunekit.core.run.epochs import run_epochs
from prunekit.core.run.failure import FailureUnrecorded, record_failure, run_failed
from prunekit.core.run.resume import open_stopped_run, repair_files, restore
from prunekit.core.run.summary import build_summary
from prunekit.core.run.validation import validate
from prunekit.core.rundir import checkpoint
from prunekit.core.rundir import layout as rundir
from prunekit.core.rundir.layout import Summary
from prunekit.core.rundir.outcomes import Outcomes, fingerprint_test_set
from prunekit.core.rundir.runlock import LOCK_FILE, RunLock
from prunekit.core.sparsity.pruner import TrainingPlan, masks_before_training
from prunekit.core.sparsity.schedule import Schedule
from prunekit.core.train.evaluation import evaluate
from prunekit.core.train.parts import Built
from prunekit.core.train.preemption import RunInterrupted
from prunekit.core.train.training import Progress, StepCallback, TrainingDiverged
from prunekit.errors import RunFailed, UsageError

__all__ = ["RunFailed", "RunInterrupted", "TrainingDiverged", "resume", "run"]


def run(
    config: RunConfig,
    *,
    plugins: Plugins | None = None,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
    warn: Callable[[str], None] | None = None,
    resume_from: checkpoint.Checkpoint | None = None,
) -> tuple[Path, Summary]:
    """Run one training job; return the run directory and its summary.

    Every UsageError is raised before the run directory is created (or, when
    resuming from a checkpoint, before anything in it is changed). Under torchrun
    (``WORLD_SIZE`` > 1) every rank trains its share with DDP and only rank 0 writes.
    SIGTERM or SIGUSR1 stops the run after the current step with a checkpoint and
    :class:`~prunekit.core.train.preemption.RunInterrupted`; :func:`resume`
    continues it.
    A run that diverges raises TrainingDiverged, one that meets any other exception
    RunFailed; both leave ``failure.json`` (reason, full traceback) in the run directory.
    """
    started_at = time.perf_counter()
    plugins = plugins or get_plugins()
    warn = warn or (lambda message: print(f"Warning: {message}", file=sys.stderr))
    resolved = validate(config, plugins.registry)
    c = resolved.config
    device = resolve_device(c.device)
    if distributed.from_environment().enabled and device.type == "cuda" and device.index is not None:
        raise UsageError(f"--device {c.device} names one GPU; under torchrun use --device cuda (rank r uses its local GPU r).")
    dist, device = distributed.setup(device)
    try:
        if resume_from is not None:  # this rank's own part of a checkpoint (under torchrun, every rank's is kept)
            resume_from = rank_state.own_view(resume_from, dist, Path(c.out or ".") / rundir.CHECKPOINT)
        autocast, scaler = autocast_factory(c, device)
        ctx = RunContext(c, resolved, plugins, dist, device, autocast, scaler, started_at, warn, on_epoch, on_step, resume_from)
        return _run(ctx)
    finally:
        distributed.teardown(dist)


def _run(ctx: RunContext) -> tuple[Path, Summary]:
    dist = ctx.dist
    out = distributed.broadcast(dist, Path(ctx.config.out) if ctx.config.out else default_run_dir(ctx.resolved))  # rank 0's clock
    problem = None
    if dist.is_main and ctx.resume_from is None:
        try:
            check_out_dir(out)
        except UsageError as exc:
            problem = str(exc)
    problem = distributed.broadcast(dist, problem)
    if problem:
        raise UsageError(problem)
    progress = Progress()
    lock = RunLock(out)  # taken by _train once the directory exists (new) or is checked (resumed)
    try:
        return _train(ctx, out, progress, lock)
    except (UsageError, RunInterrupted):
        raise
    except TrainingDiverged as exc:
        if dist.is_main:
            with contextlib.suppress(FailureUnrecorded):  # the divergence is the news, not a full disk
                record_failure(ctx, out, progress, f"training diverged (NaN/inf loss): {exc}", exc)
        raise
    except Exception as exc:
        raise run_failed(ctx, out, progress, exc) from exc
    finally:
        lock.release()


def _train(ctx: RunContext, out: Path, progress: Progress, lock: RunLock) -> tuple[Path, Summary]:
    c, resolved, dist = ctx.config, ctx.resolved, ctx.dist
    seed_everything(c.seed)
    built = build(resolved, ctx.device, ctx.scaler, dist)
    total_steps = c.epochs * len(built.train_loader)
    schedule = make_schedule(c, total_steps)
    settings = _settings(ctx, out, built, schedule)
    identity = checkpoint.identity_of(
        built.model,
        settings,
        model=c.model,
        dataset=c.dataset,
        optimizer=resolved.optimizer.name,
        pruner=resolved.pruner.name,
        device=ctx.device.type,
    )
    built.pruner.start(TrainingPlan(total_steps, len(built.train_loader), schedule))
    warnings_list: list[str] = []
    prunes = not resolved.pruner.metadata["dense"] and c.sparsity > 0
    training = Training(built, schedule, prunes, total_steps, identity)
    if prunes and schedule.end > total_steps:
        message = (
            f"pruning ramps until step {schedule.end} (warm-up {schedule.warmup}) but training has only "
            f"{total_steps} steps: the target sparsity {c.sparsity:g} will not be reached."
        )
        warnings_list.append(message)
        ctx.warn(message)

    started_at = ctx.started_at
    if ctx.resume_from is not None:  # after the settings: they record the initial learning rate
        started_at -= restore(ctx.resume_from, built, identity, progress, out, ctx.device, c.epochs)
        if dist.is_main:  # everything checked; from here on this process alone writes there
            lock.acquire()
            if (out / rundir.SUMMARY).exists():
                raise UsageError(f"--resume {out}: the run is complete ({rundir.SUMMARY} exists); there is nothing to resume.")
        for message in checkpoint.advisories(ctx.resume_from.identity, identity):
            warnings_list.append(message)
            ctx.warn(message)
    samplers, skipped = start_samplers(resolved, ctx.plugins, ctx.device)
    settings["samplers"] = sorted(samplers)
    redact = run_trackers.redactor(ctx.plugins.registry)
    settings = redact(settings)  # credentials never reach config.yaml, trackers or the summary
    # under torchrun only rank 0 writes: the run directory, its timeline and the trackers
    trackers = run_trackers.open_trackers(resolved if dist.is_main else replace(resolved, trackers=[]), out, redact, ctx.warn)
    on_sample = trackers.memory if trackers.workers else None
    timeline = out / rundir.TIMELINE if dist.is_main else None
    sampling = SamplingThread(samplers, c.sample_interval, timeline, on_sample=on_sample)
    try:  # from here on, samplers are always stopped (sampling.stop releases them)
        if dist.is_main and ctx.resume_from is None:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"Cannot create --out {out}: {exc.strerror or exc}.") from None
            lock.acquire()
            if any(p.name != LOCK_FILE for p in out.iterdir()):  # another run got there between check and lock
                raise UsageError(f"Output directory {out} already exists and is not empty; choose another --out.")
            rundir.write_config(out, settings)
        elif ctx.resume_from is not None:  # everything checked: now the files go back to the checkpoint
            if dist.is_main:
                rundir.remove_stale_temps(out)
                repair_files(out, ctx.resume_from)
            sampling.load_state_dict(ctx.resume_from.samplers)
        run_trackers.begin(trackers, out, settings, c.group, c.sparsity if prunes else 0.0)
        sampling.start()
        if ctx.resume_from is None:  # the constant schedule: masks before step 0
            progress.mask_updates += masks_before_training(
                built.pruner, schedule, prunes, lambda: sampling.set_phase("mask_update")
            )
        evaluation = run_epochs(ctx, out, training, progress, sampling, trackers, started_at)
    except BaseException as exc:
        sampling.stop()
        status, reason = run_trackers.failure_reason(exc)
        run_trackers.end(trackers, out, status, redact.text(reason))
        raise
    sampling.stop()
    try:  # trackers hear about a failure after training too
        if evaluation is None:  # resumed after the last epoch's checkpoint: score the same final model again
            distributed.sync_buffers(dist, built.model)
            evaluation = evaluate(built.model, built.test_loader, ctx.device, ctx.autocast, dist)
        fingerprint = fingerprint_test_set(c.dataset, resolved.dataset_opts, evaluation.labels.numpy())
        outcomes = Outcomes(evaluation.correct.numpy(), fingerprint, progress.history[-1]["epoch"])
        summary = build_summary(
            ctx,
            training,
            out=out,
            outcomes=outcomes,
            settings=settings,
            progress=progress,
            samplers=sampling.summary(),  # merged over ranks (max) by build_summary
            samplers_skipped=skipped,
            warnings=warnings_list,
            started_at=started_at,
        )
        summary = redact(summary)  # the environment records the command line
        summary["resumed_at_epochs"] = progress.resumed_at_epochs
        if dist.is_main:
            rundir.write_outcomes(out, outcomes)  # before the summary, which marks the run complete
    except BaseException as exc:
        status, reason = run_trackers.failure_reason(exc)
        run_trackers.end(trackers, out, status, redact.text(reason))
        raise
    summary["trackers"] = run_trackers.end(trackers, out, "completed", summary=summary)
    if dist.is_main:
        rundir.write_summary(out, summary)
    return out, summary


def _settings(ctx: RunContext, out: Path, built: Built, schedule: Schedule) -> dict[str, Any]:
    """What ``config.yaml`` records: the job as given, plus what the run resolved (options, lr, schedule)."""
    resolved, optimizer = ctx.resolved, built.optimizer
    return ctx.config.to_dict() | {
        "out": str(out),
        "pruner": resolved.pruner.name,
        "pruner_opts": resolved.pruner_opts,
        "optimizer_opts": resolved.optimizer_opts,
        "dataset_opts": resolved.dataset_opts,
        "model_opts": resolved.model_opts,
        "lr": optimizer.lr,
        "weight_decay": optimizer.optimizer.param_groups[0].get("weight_decay"),
        "warmup": schedule.warmup,
        "prune_end": schedule.end,
        "frequency": schedule.frequency,
    }


def resume(run_dir: Path | str, **kwargs: Any) -> tuple[Path, Summary]:
    """Continue a stopped run from its checkpoint; returns what :func:`run` returns.

    ``kwargs`` are ``run``'s callbacks (``plugins``, ``on_epoch``, ``on_step``, ``warn``).
    """
    config, saved = open_stopped_run(run_dir)
    return run(config, resume_from=saved, **kwargs)
