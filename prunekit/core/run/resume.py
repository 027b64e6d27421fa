"""Resuming a stopped run from the checkpoint in its directory.

Everything is checked before anything is touched: the directory, its settings
(``config.yaml``), that it has no ``summary.json`` yet, the checkpoint itself
(every field, :mod:`~prunekit.core.rundir.checkpoint_schema`), that it is this run's
(its resolved settings) and that its counters fit this run.
:func:`restore` puts the checkpoint into the freshly built run; only then does
:func:`repair_files` put the append-only files back to what they held when the
checkpoint was written (``metrics.jsonl`` from the checkpoint's epoch records, the
timeline cut to its recorded length and last complete line), so a resumed run never
repeats a line nor appends to a cut one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from prunekit.core.config.settings import FIELD_NAMES, RunConfig, config_from_mapping
from prunekit.core.data.order import data_generators, skip_batches
from prunekit.core.measure.sampling import check_sampler_state
from prunekit.core.run.validation import RAMP_SETTINGS
from prunekit.core.rundir import checkpoint
from prunekit.core.rundir import layout as rundir
from prunekit.core.rundir.files import complete_lines, jsonl_line, write_atomic
from prunekit.core.train.parts import Built
from prunekit.core.train.training import Progress
from prunekit.errors import UsageError


def open_stopped_run(run_dir: Path | str) -> tuple[RunConfig, checkpoint.Checkpoint]:
    """The settings and checkpoint of a stopped run; UsageError (one line) if it cannot be resumed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run directory.")
    if (run_dir / rundir.SUMMARY).exists():
        raise UsageError(f"--resume {run_dir}: the run is complete ({rundir.SUMMARY} exists); there is nothing to resume.")
    try:
        settings = rundir.read_config(run_dir)
    except rundir.Malformed as exc:
        raise UsageError(f"--resume {run_dir}: {exc}; the run cannot be resumed.") from None
    if settings is None:
        raise UsageError(f"--resume {run_dir}: no {rundir.CONFIG} there; it is not a prunekit run directory.")
    return config_of(settings, run_dir), checkpoint.load(run_dir / rundir.CHECKPOINT)


def config_of(settings: dict[str, Any], run_dir: Path) -> RunConfig:
    """The RunConfig that ``config.yaml``'s ``settings`` record (``out``: ``run_dir``); UsageError if invalid."""
    known = {k: v for k, v in settings.items() if k in FIELD_NAMES}
    if known.get("schedule") == "constant":  # config.yaml records the schedule's 0/0/1, which no one gave
        known = {k: v for k, v in known.items() if k not in RAMP_SETTINGS}
    return config_from_mapping(known | {"out": str(run_dir)})


def repair_files(run_dir: Path, saved: checkpoint.Checkpoint) -> None:
    """Put the append-only run files back to what they held when ``saved`` was written."""
    run_dir = Path(run_dir)
    write_atomic(run_dir / rundir.METRICS, "".join(jsonl_line(record) for record in saved.history))
    timeline = run_dir / rundir.TIMELINE
    if timeline.exists():
        size = min(timeline.stat().st_size, saved.files.get(rundir.TIMELINE, timeline.stat().st_size))
        os.truncate(timeline, complete_lines(timeline, size))


def check_fits(saved: checkpoint.Checkpoint, epochs: int, batches: int, path: Path) -> None:
    """CheckpointError unless the checkpoint's counters fit a run of ``epochs`` of ``batches`` each."""
    complete = [record.get("epoch") for record in saved.history]
    if saved.epoch > epochs or (saved.epoch == epochs and saved.batch):
        problem = f"{saved.epoch} epoch(s) and {saved.batch} batch(es) done, but this run has {epochs} epoch(s)"
    elif saved.batch >= batches:
        problem = f"{saved.batch} batch(es) of an epoch done, but an epoch here has {batches}"
    elif saved.step > epochs * batches:
        problem = f"{saved.step} step(s) done, but this run has {epochs * batches}"
    elif complete != list(range(1, saved.epoch + 1)):
        problem = f"epoch records {complete[:5]}{'...' if len(complete) > 5 else ''} for {saved.epoch} complete epoch(s)"
    elif any(epoch > saved.epoch for epoch in saved.resumed_at_epochs):
        problem = f"resumes at epochs {saved.resumed_at_epochs[:5]}, after the {saved.epoch} complete"
    else:
        return
    raise checkpoint.CheckpointError(f"{path} does not fit this run ({problem}); start the run again.")


def check_run_files(run_dir: Path) -> None:
    """UsageError if an append-only run file is a link or not a regular file (it would be written through)."""
    for name in (rundir.METRICS, rundir.TIMELINE):
        path = Path(run_dir) / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise UsageError(
                f"--resume {run_dir}: {name} is a link or not a regular file; a run directory's files must be "
                "its own regular files: resume a run directory prunekit wrote."
            )


def restore(
    saved: checkpoint.Checkpoint,
    built: Built,
    identity: dict[str, Any],
    progress: Progress,
    out: Path,
    device: torch.device,
    epochs: int,
) -> float:
    """Put a checkpoint into a freshly built run of ``epochs``; return the wall time the run had
    already taken. Everything is checked first: CheckpointError, touching nothing, if it does not fit."""
    path = out / rundir.CHECKPOINT
    checkpoint.check_identity(saved.identity, identity, path)
    check_fits(saved, epochs, len(built.train_loader), path)
    check_run_files(out)
    generators = data_generators(built.train_loader)
    try:
        check_sampler_state(saved.samplers)
        checkpoint.restore(
            saved, model=built.model, optimizer=built.optimizer, pruner=built.pruner, generators=generators, path=path
        )
        progress.load_loop_state(saved.loop, device)
        wall = float(saved.loop.get("wall_s", 0.0))
        if not 0 <= wall < math.inf:
            raise ValueError(f"its wall time is {wall} s")
        if saved.batch:  # stopped part-way through an epoch: same order, the batches done are skipped
            progress.epoch_start = {name: g.get_state() for name, g in generators.items()}
            skip_batches(built.train_loader, saved.batch)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise checkpoint.CheckpointError(f"{path} does not fit this run ({reason}); start the run again.") from None
    progress.history = list(saved.history)
    progress.resumed_at_epochs = [*saved.resumed_at_epochs, saved.epoch]
    return wall
