"""Experiment trackers: the protocol a tracker plugin implements.

The run directory stays the source of truth; a tracker is a view of it in
another tool (TensorBoard, MLflow, W&B...). Every tracker call runs on that
tracker's own worker thread, never on the training thread (see
:mod:`prunekit.core.tracking.dispatch`), in this order::

    factory(**options) -> tracker
    tracker.start(run)                  # once; may return state to keep for a resume
    tracker.log_epoch(record)           # after every epoch
    tracker.log_memory(sample)          # memory samples, at most every memory_interval_s
    tracker.finish(end)                 # once: final status, summary and files

A tracker that raises is counted, its first error shown once, and the run goes
on; one whose ``start`` raised receives nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from prunekit.core.config.options import Option

#: Final statuses a run can end with.
STATUSES = ("completed", "failed", "interrupted")

#: An option the core adds to every tracker (``--tracker-opt NAME.finish_timeout_s=5``).
FINISH_TIMEOUT = Option(
    "finish_timeout_s", float, 30.0, "seconds the end of the run waits for this tracker, then abandons it", minimum=0.0
)
COMMON_OPTIONS = (FINISH_TIMEOUT,)


def memory_interval_option(default: float) -> Option:
    """The ``memory_interval_s`` option of a tracker that logs memory: seconds between
    memory points per sampler (0: none), which sets the tracker's ``memory_interval_s``."""
    return Option("memory_interval_s", float, default, "seconds between memory points per sampler (0: none)", minimum=0.0)


@dataclass(frozen=True)
class RunStart:
    """What a tracker learns when the run starts.

    ``config`` is every resolved setting (as in ``config.yaml``), credentials
    redacted. ``group`` names the collection the run belongs to (the matrix
    name) or is None for a single run. ``previous`` is what this tracker's
    ``start`` returned in an earlier attempt of the same run directory (a
    resumed run), else empty. ``resumed`` says the run continues an earlier one.
    ``target_sparsity`` is the run's target (0 for a dense pruner).
    """

    run_dir: Path
    name: str
    config: dict[str, Any]
    group: str | None = None
    resumed: bool = False
    previous: dict[str, Any] = field(default_factory=dict)
    prunekit_version: str = ""
    target_sparsity: float = 0.0


@dataclass(frozen=True)
class RunEnd:
    """How the run ended.

    ``status`` is one of :data:`STATUSES`; ``reason`` says why a run failed or
    was interrupted. ``summary`` is the run's summary (ledger included) when it
    completed, else None. ``files`` names the run directory's files a tracker
    may upload (``config.yaml``, ``metrics.jsonl``, ``timeline.jsonl``), by
    file name.
    """

    status: str
    reason: str | None = None
    summary: dict[str, Any] | None = None
    files: dict[str, Path] = field(default_factory=dict)


@runtime_checkable
class Tracker(Protocol):
    """What a tracker plugin's factory returns.

    ``log_epoch`` receives the epoch's line of ``metrics.jsonl`` (``epoch``,
    ``step``, ``train_loss``, ``train_accuracy``, ``test_loss``,
    ``test_accuracy`` (percent), ``sparsity``, ``sparsity_all``,
    ``scheduled_sparsity``, ``lr``, ``epoch_time_s``) plus ``layer_sparsity``
    (fraction of zeros per prunable weight, by name). ``log_memory`` receives
    one ``timeline.jsonl`` line (``t``, ``sampler``, ``scope``, ``phase``,
    ``step``, ``figures``); ``memory_interval_s`` sets how often per sampler
    (None: no memory samples).
    """

    memory_interval_s: float | None

    def start(self, run: RunStart) -> dict[str, Any] | None:
        """Open the tracker's run; return JSON-able state to get back on resume."""

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Log one epoch's metrics."""

    def log_memory(self, sample: dict[str, Any]) -> None:
        """Log one memory sample."""

    def finish(self, end: RunEnd) -> None:
        """Log the summary and status, upload what it wants, and close."""
