"""What the runner does with trackers: open them, feed them, and end them with the run's status."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from prunekit import __version__
from prunekit.core.plugins.registry import Registry
from prunekit.core.run.validation import ResolvedRun
from prunekit.core.rundir import layout as rundir
from prunekit.core.sparsity.targets import Target
from prunekit.core.tracking.dispatch import Trackers
from prunekit.core.tracking.protocol import RunEnd, RunStart
from prunekit.core.tracking.redact import Redactor
from prunekit.core.train.preemption import RunInterrupted


def redactor(registry: Registry) -> Redactor:
    """Redacts credential-like environment values and those every installed tracker declares."""
    names = [n for entry in registry.entries["trackers"].values() for n in entry.metadata["credentials"]]
    return Redactor(names)


def open_trackers(resolved: ResolvedRun, out: Path, redact: Redactor, warn: Callable[[str], None]) -> Trackers:
    """The run's trackers (none started yet)."""
    chosen = [(e.name, e.factory, resolved.tracker_opts[e.name]) for e in resolved.trackers]
    return Trackers(chosen, state_path=Path(out) / rundir.TRACKERS, redact=redact, warn=warn)


def begin(trackers: Trackers, out: Path, settings: dict[str, Any], group: str | None, target_sparsity: float = 0.0) -> None:
    """Start every tracker with the (already redacted) resolved settings."""
    if not trackers.workers:
        return
    previous = trackers.previous_state()
    for worker in trackers.workers:
        run = RunStart(
            run_dir=Path(out),
            name=Path(out).name,
            config=settings,
            group=group,
            resumed=bool(previous),
            previous=previous.get(worker.name, {}),
            prunekit_version=__version__,
            target_sparsity=target_sparsity,
        )
        worker.begin(run)


@torch.no_grad()
def layer_sparsity(targets: list[Target]) -> dict[str, float]:
    """Fraction of exact zeros in each prunable weight the forward pass uses."""
    return {t.name: 1.0 - torch.count_nonzero(t.weight).item() / t.weight.numel() for t in targets}


def end(trackers: Trackers, out: Path, status: str, reason: str | None = None, summary: Any = None) -> dict[str, Any]:
    """Tell every tracker how the run ended (bounded wait); return their counts for the summary."""
    if not trackers.workers:
        return {}
    names = (rundir.CONFIG, rundir.METRICS, rundir.TIMELINE)
    files = {name: Path(out) / name for name in names if (Path(out) / name).exists()}
    copy = dict(summary) if summary is not None else None  # the runner adds the counts to its own
    return trackers.end(RunEnd(status, reason=reason, summary=copy, files=files))


def failure_reason(exc: BaseException) -> tuple[str, str]:
    """(status, reason) for an exception that ended the run."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", str(exc) or "interrupted by the user (Ctrl-C)"
    if isinstance(exc, RunInterrupted):
        return "interrupted", str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return "failed", f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (``kill``, Slurm, a stopping matrix) end the run like Ctrl-C, so trackers
    learn it was interrupted. Call from the main thread of a process that runs one job."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("terminated by SIGTERM")

    signal.signal(signal.SIGTERM, handler)
