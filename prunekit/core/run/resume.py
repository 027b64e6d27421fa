"""Resuming a stopped run from the checkpoint in its directory.

Everything is checked before anything is touched: the directory, its settings
(``config.yaml``), that it has no ``summary.json`` yet, and the checkpoint
itself. Only then are the append-only files cut back to what they held when
the checkpoint was written, so a resumed run never repeats a line.
:func:`restore` puts the checkpoint into the freshly built run; :func:`prunekit.core.run.runner.resume`
runs it on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from prunekit.core.config.settings import FIELD_NAMES, RunConfig, config_from_mapping
from prunekit.core.data.order import data_generators, skip_batches
from prunekit.core.run.validation import RAMP_SETTINGS
from prunekit.core.rundir import checkpoint
from prunekit.core.rundir import layout as rundir
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


def cut_files(run_dir: Path, sizes: dict[str, int]) -> None:
    """Truncate each append-only run file to its length when the checkpoint was written."""
    for name, size in sizes.items():
        path = Path(run_dir) / name
        if path.exists() and path.stat().st_size > size:
            os.truncate(path, size)


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
