"""Train one model with one optimizer and one pruner, and write an honest run directory.

``run()`` only orchestrates: :mod:`~prunekit.core.building` makes what the run
needs, :mod:`~prunekit.core.training` trains an epoch,
:mod:`~prunekit.core.evaluation` scores it, :mod:`~prunekit.core.summary`
describes the result, and :mod:`~prunekit.core.rundir` owns every file written.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from prunekit.core import checkpoint, distributed, run_trackers, rundir
from prunekit.core.building import (
    Autocast,
    Built,
    autocast_factory,
    build,
    check_out_dir,
    default_run_dir,
    make_schedule,
    resolve_device,
    seed_everything,
    start_samplers,
)
from prunekit.core.config import ResolvedRun, RunConfig, validate
from prunekit.core.data import data_generators, skip_batches
from prunekit.core.evaluation import evaluate
from prunekit.core.outcomes import Outcomes, fingerprint_test_set
from prunekit.core.plugins import Plugins, get_plugins
from prunekit.core.preemption import RunInterrupted, StopRequests
from prunekit.core.pruner import TrainingPlan
from prunekit.core.resume import cut_files
from prunekit.core.rundir import Summary
from prunekit.core.sampling import SamplingThread
from prunekit.core.summary import build_summary
from prunekit.core.targets import measure_sparsity
from prunekit.core.training import Progress, StepCallback, TrainingDiverged, train_epoch
from prunekit.errors import RunFailed, UsageError

__all__ = ["RunFailed", "RunInterrupted", "TrainingDiverged", "run"]

EpochCallback = Callable[[dict[str, Any]], None]


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
    :class:`~prunekit.core.preemption.RunInterrupted`; :func:`prunekit.core.resume.resume`
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
        return _run(c, resolved, plugins, dist, device, started_at, on_epoch, on_step, warn, resume_from)
    finally:
        distributed.teardown(dist)


def _run(
    c: RunConfig,
    resolved: ResolvedRun,
    plugins: Plugins,
    dist: distributed.Dist,
    device: torch.device,
    started_at: float,
    on_epoch: EpochCallback | None,
    on_step: StepCallback | None,
    warn: Callable[[str], None],
    resume_from: checkpoint.Checkpoint | None = None,
) -> tuple[Path, Summary]:
    autocast, scaler = autocast_factory(c, device)
    out = distributed.broadcast(dist, Path(c.out) if c.out else default_run_dir(resolved))  # rank 0's clock names it
    problem = None
    if dist.is_main and resume_from is None:
        try:
            check_out_dir(out)
        except UsageError as exc:
            problem = str(exc)
    problem = distributed.broadcast(dist, problem)
    if problem:
        raise UsageError(problem)
    progress = Progress()
    try:
        return _train(
            c, resolved, plugins, dist, device, started_at, on_epoch, on_step, warn, autocast, scaler, out, progress, resume_from
        )
    except (UsageError, RunInterrupted):
        raise
    except TrainingDiverged as exc:
        if dist.is_main:
            _record_failure(out, resolved, plugins, progress, started_at, f"training diverged (NaN/inf loss): {exc}", exc)
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        reason = f"{type(exc).__name__}: {first}".rstrip(": ")
        text = "".join(traceback.format_exception(exc))
        if dist.is_main:
            reason, text = _record_failure(out, resolved, plugins, progress, started_at, reason, exc)
        raise RunFailed(f"{reason} (traceback in {out / rundir.FAILURE})", reason, text) from exc


def _record_failure(
    out: Path, resolved: ResolvedRun, plugins: Plugins, progress: Progress, started_at: float, reason: str, exc: BaseException
) -> tuple[str, str]:
    """Write ``failure.json`` (the matrix's shape, plus the traceback, credentials redacted);
    return the redacted reason and traceback."""
    redact = run_trackers.redactor(plugins.registry)
    reason, text = redact.text(reason), redact.text("".join(traceback.format_exception(exc)))
    config = redact(resolved.config.to_dict() | {"out": str(out), "pruner": resolved.pruner.name})
    rundir.write_failure(
        out,
        {
            "status": "failed",
            "reason": reason,
            "returncode": 1,
            "signal": None,
            "exception": type(exc).__name__,
            "traceback": text.splitlines(),
            "epochs_completed": len(progress.history),
            "wall_time_s": time.perf_counter() - started_at,
            "config": config,
            "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    return reason, text


def _train(
    c: RunConfig,
    resolved: ResolvedRun,
    plugins: Plugins,
    dist: distributed.Dist,
    device: torch.device,
    started_at: float,
    on_epoch: EpochCallback | None,
    on_step: StepCallback | None,
    warn: Callable[[str], None],
    autocast: Autocast,
    scaler: torch.amp.GradScaler | None,
    out: Path,
    progress: Progress,
    resume_from: checkpoint.Checkpoint | None,
) -> tuple[Path, Summary]:
    seed_everything(c.seed)
    built = build(resolved, device, scaler, dist)
    identity = checkpoint.identity_of(
        built.model, model=c.model, dataset=c.dataset, optimizer=resolved.optimizer.name, pruner=resolved.pruner.name
    )

    total_steps = c.epochs * len(built.train_loader)
    schedule = make_schedule(c, total_steps)
    built.pruner.start(TrainingPlan(total_steps, len(built.train_loader), schedule))
    warnings_list: list[str] = []
    prunes = not resolved.pruner.metadata["dense"] and c.sparsity > 0
    if prunes and schedule.end > total_steps:
        message = (
            f"pruning ramps until step {schedule.end} (warm-up {schedule.warmup}) but training has only "
            f"{total_steps} steps: the target sparsity {c.sparsity:g} will not be reached."
        )
        warnings_list.append(message)
        warn(message)

    settings = c.to_dict() | {
        "out": str(out),
        "pruner": resolved.pruner.name,
        "pruner_opts": resolved.pruner_opts,
        "optimizer_opts": resolved.optimizer_opts,
        "dataset_opts": resolved.dataset_opts,
        "model_opts": resolved.model_opts,
        "lr": built.optimizer.lr,
        "weight_decay": built.optimizer.optimizer.param_groups[0].get("weight_decay"),
        "warmup": schedule.warmup,
        "prune_end": schedule.end,
        "frequency": schedule.frequency,
    }
    if resume_from is not None:  # after the settings: they record the initial learning rate
        started_at -= restore(resume_from, built, identity, progress, out, device)
    samplers, skipped = start_samplers(resolved, plugins, device)
    settings["samplers"] = sorted(samplers)
    redact = run_trackers.redactor(plugins.registry)
    settings = redact(settings)  # credentials never reach config.yaml, trackers or the summary
    # under torchrun only rank 0 writes: the run directory, its timeline and the trackers
    trackers = run_trackers.open_trackers(resolved if dist.is_main else replace(resolved, trackers=[]), out, redact, warn)
    on_sample = trackers.memory if trackers.workers else None
    timeline = out / rundir.TIMELINE if dist.is_main else None
    sampling = SamplingThread(samplers, c.sample_interval, timeline, on_sample=on_sample)
    stop = StopRequests()
    try:  # from here on, samplers are always stopped (sampling.stop releases them)
        if dist.is_main and resume_from is None:
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"Cannot create --out {out}: {exc.strerror or exc}.") from None
            rundir.write_config(out, settings)
        elif resume_from is not None:  # everything checked: now cut the files back to the checkpoint
            if dist.is_main:
                cut_files(out, resume_from.files)
            sampling.load_state_dict(resume_from.samplers)
        run_trackers.begin(trackers, out, settings, c.group, c.sparsity if prunes else 0.0)
        sampling.start()
        if (
            resume_from is None and prunes and built.pruner.is_update_step(0)
        ):  # the constant schedule: masks before the first step
            sampling.set_phase("mask_update")
            built.pruner.update_masks(schedule.sparsity_at(0), 0)
            built.pruner.enforce()
            progress.mask_updates += 1
        first = resume_from.epoch + 1 if resume_from is not None else 1
        evaluation = None

        def save(epoch: int) -> None:
            if metrics_file is None:  # under torchrun only rank 0 writes
                return
            metrics_file.flush()
            sampler_state = sampling.state_dict()
            saved = checkpoint.capture(
                identity=identity,
                epoch=epoch,
                step=progress.step,
                batch=progress.batch,
                model=built.model,
                optimizer=built.optimizer,
                pruner=built.pruner,
                generators=dict(progress.epoch_start) if progress.batch else dict(data_generators(built.train_loader)),
                loop=progress.loop_state() | {"wall_s": time.perf_counter() - started_at},
                history=progress.history,
                samplers=sampler_state,
                resumed_at_epochs=progress.resumed_at_epochs,
                files={rundir.METRICS: os.fstat(metrics_file.fileno()).st_size, rundir.TIMELINE: sampler_state["timeline_bytes"]},
            )
            checkpoint.save(out / rundir.CHECKPOINT, saved)

        metrics = rundir.open_metrics(out, append=resume_from is not None) if dist.is_main else contextlib.nullcontext()
        with stop, metrics as metrics_file:
            for epoch in range(first, c.epochs + 1):
                trained = train_epoch(built, schedule, prunes, progress, sampling, device, autocast, total_steps, on_step, stop)
                if trained.stopped:
                    save(epoch - 1)
                    raise RunInterrupted(out, stop.signal_name or "a stop request", epoch - 1, progress.step)
                built.optimizer.end_epoch(epoch)
                sampling.set_phase("eval")
                eval_start = time.perf_counter()
                distributed.sync_buffers(dist, built.model)
                evaluation = evaluate(built.model, built.test_loader, device, autocast, dist)
                test_loss, test_acc = evaluation.loss, evaluation.accuracy
                progress.eval_time += time.perf_counter() - eval_start
                sparsity = measure_sparsity(built.model, built.targets)
                record = {
                    "epoch": epoch,
                    "step": progress.step,
                    "train_loss": trained.train_loss,
                    "train_accuracy": trained.train_accuracy,
                    "test_loss": test_loss,
                    "test_accuracy": test_acc,
                    "sparsity": sparsity["prunable"],
                    "sparsity_all": sparsity["all"],
                    "scheduled_sparsity": schedule.sparsity_at(progress.step) if prunes else 0.0,
                    "lr": trained.lr,
                    "epoch_time_s": trained.seconds,
                }
                if metrics_file is not None:
                    rundir.append_record(metrics_file, record)
                progress.history.append(record)
                every = c.checkpoint_every
                if (every and (epoch % every == 0 or epoch == c.epochs)) or stop.requested:
                    save(epoch)
                if trackers.workers:
                    trackers.epoch(record | {"layer_sparsity": run_trackers.layer_sparsity(built.targets)})
                if on_epoch is not None:
                    on_epoch(record)
                if stop.requested and epoch < c.epochs:
                    raise RunInterrupted(out, stop.signal_name or "a stop request", epoch, progress.step)
    except BaseException as exc:
        sampling.stop()
        status, reason = run_trackers.failure_reason(exc)
        run_trackers.end(trackers, out, status, redact.text(reason))
        raise
    sampling.stop()
    try:  # trackers hear about a failure after training too
        if evaluation is None:  # resumed after the last epoch's checkpoint: score the same final model again
            distributed.sync_buffers(dist, built.model)
            evaluation = evaluate(built.model, built.test_loader, device, autocast, dist)
        fingerprint = fingerprint_test_set(c.dataset, resolved.dataset_opts, evaluation.labels.numpy())
        outcomes = Outcomes(evaluation.correct.numpy(), fingerprint, progress.history[-1]["epoch"])
        summary = build_summary(
            out=out,
            outcomes=outcomes,
            resolved=resolved,
            settings=settings,
            built=built,
            schedule=schedule,
            prunes=prunes,
            progress=progress,
            samplers=sampling.summary(),  # merged over ranks (max) by build_summary
            samplers_skipped=skipped,
            warnings=warnings_list,
            plugins=plugins,
            device=device,
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


def restore(
    saved: checkpoint.Checkpoint, built: Built, identity: dict[str, Any], progress: Progress, out: Path, device: torch.device
) -> float:
    """Put a checkpoint into a freshly built run; return the wall time the run had already taken."""
    path = out / rundir.CHECKPOINT
    checkpoint.check_identity(saved.identity, identity, path)
    generators = data_generators(built.train_loader)
    checkpoint.restore(saved, model=built.model, optimizer=built.optimizer, pruner=built.pruner, generators=generators, path=path)
    progress.load_loop_state(saved.loop, device)
    progress.history = list(saved.history)
    progress.resumed_at_epochs = [*saved.resumed_at_epochs, saved.epoch]
    if saved.batch:  # stopped part-way through an epoch: same order, the batches done are skipped
        progress.epoch_start = {name: g.get_state() for name, g in generators.items()}
        skip_batches(built.train_loader, saved.batch)
    return float(saved.loop.get("wall_s", 0.0))
