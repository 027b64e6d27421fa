"""The epoch loop: train, evaluate, record and checkpoint each epoch; stop cleanly when asked.

Each epoch appends one record to ``metrics.jsonl`` (rank 0), saves a checkpoint when
``--checkpoint-every`` or a stop request says so, and tells the trackers and the caller.
Under torchrun a stop requested on any rank stops every rank after the same step, and
rank 0's checkpoint holds every rank's own state (:mod:`~prunekit.core.distributed.rank_state`).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import IO

import torch

from prunekit.core.data.order import data_generators
from prunekit.core.distributed import ddp as distributed
from prunekit.core.distributed import rank_state
from prunekit.core.measure.flops import TrainingFlops
from prunekit.core.measure.sampling import SamplingThread
from prunekit.core.run import trackers as run_trackers
from prunekit.core.run.context import RunContext, Training
from prunekit.core.rundir import checkpoint
from prunekit.core.rundir import layout as rundir
from prunekit.core.sparsity.targets import measure_sparsity
from prunekit.core.tracking.dispatch import Trackers
from prunekit.core.train.evaluation import Evaluation, evaluate
from prunekit.core.train.preemption import RunInterrupted, StopRequests
from prunekit.core.train.training import Progress, StepCallback, train_epoch

__all__ = ["run_epochs"]


def run_epochs(
    ctx: RunContext,
    out: Path,
    training: Training,
    progress: Progress,
    sampling: SamplingThread,
    trackers: Trackers,
    started_at: float,
) -> Evaluation | None:
    """Train the epochs still to do; return the last evaluation (None if none were left).

    Raises :class:`RunInterrupted` after saving a checkpoint when a stop was requested.
    """
    c, built, schedule = ctx.config, training.built, training.schedule
    main = ctx.dist.is_main

    def save(epoch: int, metrics_file: IO[str] | None) -> None:
        generators: dict[str, checkpoint.OrderState | torch.Tensor] = {}
        generators.update(progress.epoch_start if progress.batch else data_generators(built.train_loader))
        if metrics_file is not None:
            metrics_file.flush()
        sampler_state = sampling.state_dict()
        ranks = rank_state.gather(ctx.dist, generators, progress.loop_state(), sampler_state)  # every rank's own
        if metrics_file is None:  # under torchrun only rank 0 writes
            return
        saved = checkpoint.capture(
            identity=training.identity,
            epoch=epoch,
            step=progress.step,
            batch=progress.batch,
            model=built.model,
            optimizer=built.optimizer,
            pruner=built.pruner,
            generators=generators,
            loop=progress.loop_state() | {"wall_s": time.perf_counter() - started_at},
            history=progress.history,
            samplers=sampler_state,
            resumed_at_epochs=progress.resumed_at_epochs,
            ranks=ranks,
            files={rundir.METRICS: os.fstat(metrics_file.fileno()).st_size, rundir.TIMELINE: sampler_state["timeline_bytes"]},
        )
        checkpoint.save(out / rundir.CHECKPOINT, saved)

    asked_elsewhere = "a stop request on another rank" if ctx.dist.enabled else "a stop request"
    first = ctx.resume_from.epoch + 1 if ctx.resume_from is not None else 1
    evaluation = None
    stop = StopRequests()
    metrics = rundir.open_metrics(out, append=ctx.resume_from is not None) if main else contextlib.nullcontext()
    flops = TrainingFlops(built.targets, progress.training_flops)
    with stop, metrics as metrics_file:
        for epoch in range(first, c.epochs + 1):
            trained = train_epoch(
                built,
                schedule,
                training.prunes,
                progress,
                sampling,
                ctx.device,
                ctx.autocast,
                training.total_steps,
                _counting_flops(flops, progress, training, ctx.on_step),
                stop,
            )
            if trained.stopped:
                save(epoch - 1, metrics_file)
                raise RunInterrupted(out, stop.signal_name or asked_elsewhere, epoch - 1, progress.step)
            built.optimizer.end_epoch(epoch)
            sampling.set_phase("eval")
            eval_start = time.perf_counter()
            distributed.sync_buffers(ctx.dist, built.model)
            evaluation = evaluate(built.model, built.test_loader, ctx.device, ctx.autocast, ctx.dist)
            progress.eval_time += time.perf_counter() - eval_start
            sparsity = measure_sparsity(built.model, built.targets)
            record = {
                "epoch": epoch,
                "step": progress.step,
                "train_loss": trained.train_loss,
                "train_accuracy": trained.train_accuracy,
                "test_loss": evaluation.loss,
                "test_accuracy": evaluation.accuracy,
                "sparsity": sparsity["prunable"],
                "sparsity_all": sparsity["all"],
                "scheduled_sparsity": schedule.sparsity_at(progress.step) if training.prunes else 0.0,
                "lr": trained.lr,
                "epoch_time_s": trained.seconds,
                "data_wait_s": trained.data_wait,
            }
            if metrics_file is not None:
                rundir.append_record(metrics_file, record)
            progress.history.append(record)
            every = c.checkpoint_every
            stopping = stop.agreed(ctx.dist)  # asked on any rank: all checkpoint and stop here
            if (every and (epoch % every == 0 or epoch == c.epochs)) or stopping:
                save(epoch, metrics_file)
            if trackers.workers:
                trackers.epoch(record | {"layer_sparsity": run_trackers.layer_sparsity(built.targets)})
            if ctx.on_epoch is not None:
                ctx.on_epoch(record)
            if stopping and epoch < c.epochs:
                raise RunInterrupted(out, stop.signal_name or asked_elsewhere, epoch, progress.step)
    return evaluation


def _counting_flops(flops: TrainingFlops, progress: Progress, training: Training, on_step: StepCallback | None) -> StepCallback:
    """``on_step`` that first adds the step's training FLOPs (every rank's examples) to ``progress``."""
    pruner, world = training.built.pruner, training.built.dist.world_size
    dense_gradient = getattr(pruner, "dense_gradient_step", None)  # optional pruner method (RigL)
    seen = progress.seen if progress.batch else 0  # a resumed epoch's batches are counted already
    updates = progress.mask_updates

    def counted(step: int, total_steps: int) -> None:
        nonlocal seen, updates
        flops.add_step((progress.seen - seen) * world, bool(dense_gradient and dense_gradient(step)))
        seen = progress.seen
        if progress.mask_updates != updates:  # this step's update: the next forward pass uses new masks
            flops.masks_changed()
            updates = progress.mask_updates
        progress.training_flops = flops.state_dict()
        if on_step is not None:
            on_step(step, total_steps)

    return counted
