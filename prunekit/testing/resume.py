"""Stop a real run part-way and resume it: the checks that a resumed run is bit-identical.

A run is compared with an uninterrupted one on everything but timing::

    from prunekit.testing.resume import comparable, interrupt, one_thread, resume_run

    with one_thread():                       # the child runs with one thread too
        short_run(reference_dir, **settings)
    interrupt(settings, stopped_dir, "kill", "epoch", 1)   # SIGKILL after epoch 1's checkpoint
    resume_run(stopped_dir)
    assert comparable(stopped_dir)[:2] == comparable(reference_dir)[:2]

Bit-identity holds for one thread count (float sums depend on it), so the child
runs with ``OMP_NUM_THREADS=1`` and in-process runs should use :func:`one_thread`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

# `prunekit run --config CONFIG --out DIR` in a child process that kills itself with SIGKILL (or asks
# itself to stop with SIGTERM) at a chosen point: after an epoch (and its checkpoint), or after a step.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from prunekit import cli, progress
    config, out, how, when, at = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    sig = signal.SIGKILL if how == "kill" else signal.SIGTERM
    step, epoch = progress.RunProgress.step, progress.RunProgress.epoch
    def on_step(self, n, total):
        step(self, n, total)
        if when == "step" and n == at:
            os.kill(os.getpid(), sig)
    def on_epoch(self, record):
        epoch(self, record)
        if when == "epoch" and record["epoch"] == at:
            os.kill(os.getpid(), sig)
    progress.RunProgress.step, progress.RunProgress.epoch = on_step, on_epoch
    cli.main(["run", "--config", config, "--out", out])
""")

#: Summary fields that differ between any two runs (clocks, the machine, the directory).
TIMING = frozenset(
    {
        "wall_time_s",
        "train_time_s",
        "eval_time_s",
        "mean_step_time_s",
        "data_wait_s",
        "data_wait_fraction",
        "samplers",
        "environment",
        "run_dir",
        "resumed_at_epochs",
    }
)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch with one thread inside the block (as the child does), then restore the count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def interrupt(
    settings: dict[str, Any], out: Path, how: str, when: str, at: int, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``prunekit run`` with ``settings`` (run settings, ``out`` aside) into ``out`` in a child
    process with ``OMP_NUM_THREADS=1`` that ends itself: ``how`` is ``"kill"`` (SIGKILL) or ``"term"``
    (SIGTERM: a graceful stop with a checkpoint, exit status 3); ``when`` is ``"epoch"`` (after epoch
    ``at`` and its checkpoint) or ``"step"`` (after optimizer step ``at``)."""
    out = Path(out)
    config = out.parent / f"{out.name}.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in settings.items() if k != "out"}))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-c", CHILD, str(config), str(out), how, when, str(at)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def resume_run(out: Path) -> None:
    """``prunekit run --resume out`` in this process, with one thread."""
    from prunekit.core.run.runner import resume

    with one_thread():
        resume(out)


def comparable(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    """A finished run's summary without :data:`TIMING`, its metrics without epoch times, and its
    last checkpoint (:class:`prunekit.core.rundir.checkpoint.Checkpoint`)."""
    from prunekit.core.rundir import checkpoint
    from prunekit.core.rundir import layout as rundir

    out = Path(out)
    summary = json.loads((out / rundir.SUMMARY).read_text())
    metrics = [json.loads(line) for line in (out / rundir.METRICS).read_text().splitlines()]
    for record in metrics:
        record.pop("epoch_time_s")
        record.pop("data_wait_s")
    state = checkpoint.load(out / rundir.CHECKPOINT)
    return {k: v for k, v in summary.items() if k not in TIMING}, metrics, state
