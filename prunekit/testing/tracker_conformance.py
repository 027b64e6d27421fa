"""Conformance checks every prunekit tracker must pass, reusable by plugin authors.

Call :func:`check_tracker` with your factory, its options and the directories
your tracker writes to (if any); it raises ``AssertionError`` naming the broken
rule and returns what happened, so your test can then read the tracker's output
back with the tool's own reader and compare it with :func:`sample_epochs` and
:func:`sample_summary`. With pytest::

    from prunekit.testing.tracker_conformance import check_tracker

    def test_my_tracker_conforms(tmp_path):
        report = check_tracker(MyTracker, {"log_dir": str(tmp_path / "logs")},
                               run_dir=tmp_path / "run", outputs=[tmp_path / "logs"],
                               credentials=["MYTOOL_API_KEY"])
        assert report.counts["errors"] == 0

The rules (each a function below, usable on its own):

- the factory returns an object with the tracker protocol (``start``,
  ``log_epoch``, ``log_memory``, ``finish``, ``memory_interval_s`` None or > 0);
- ``start`` returns None or a JSON-serialisable dict (kept for a resume);
- run by the core's dispatcher through a completed, a failed and an
  interrupted run, no call raises and every event is delivered;
- a resumed run (``start`` given the state it returned) works;
- with fake credentials in the environment variables the tracker reads, the
  credentials appear in none of the files it writes (nor the run directory).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunekit.core.tracking.dispatch import Trackers
from prunekit.core.tracking.protocol import STATUSES, RunEnd, Tracker
from prunekit.core.tracking.redact import Redactor
from prunekit.testing.tracker_samples import (
    sample_config,
    sample_epochs,
    sample_files,
    sample_memory,
    sample_run_start,
    sample_summary,
)

TrackerFactory = Callable[..., Any]
#: The fake credential put into every credential variable during the checks.
FAKE_SECRET = "prunekit-fake-credential-7d1e0c"


@dataclass
class ConformanceReport:
    """What the checks saw: the dispatcher's counts per lifecycle and the state start returned."""

    counts: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    memory_interval_s: float | None = None
    statuses: list[str] = field(default_factory=list)


def check_shape(tracker: Any) -> None:
    """Assert the object has the tracker protocol's attributes."""
    assert isinstance(tracker, Tracker), (
        f"{type(tracker).__name__} lacks part of the tracker protocol (memory_interval_s, start, log_epoch, log_memory, finish)"
    )
    for method in ("start", "log_epoch", "log_memory", "finish"):
        assert callable(getattr(tracker, method)), f"{method} must be a method"
    interval = tracker.memory_interval_s
    assert interval is None or (isinstance(interval, (int, float)) and not isinstance(interval, bool) and interval > 0), (
        f"memory_interval_s must be None or a positive number of seconds, got {interval!r}"
    )


def check_direct(factory: TrackerFactory, options: dict[str, Any], run_dir: Path) -> ConformanceReport:
    """Call the tracker directly through one completed run; check shape and start's return."""
    tracker = factory(**options)
    check_shape(tracker)
    state = tracker.start(sample_run_start(run_dir))
    assert state is None or isinstance(state, dict), f"start() must return None or a dict, got {type(state).__name__}"
    if state is not None:
        json.dumps(state)  # kept in the run directory: must be JSON
    for record in sample_epochs():
        tracker.log_epoch(record)
    for sample in sample_memory():
        tracker.log_memory(sample)
    tracker.finish(RunEnd("completed", summary=sample_summary(run_dir), files=sample_files(run_dir)))
    return ConformanceReport(state=state, memory_interval_s=tracker.memory_interval_s, statuses=["completed"])


def run_dispatched(
    factory: TrackerFactory,
    options: dict[str, Any],
    run_dir: Path,
    end: RunEnd,
    *,
    previous: dict[str, Any] | None = None,
    name: str = "conformance",
    epochs: int = 2,
    first_epoch: int = 1,
) -> dict[str, Any]:
    """Drive the tracker through the core's dispatcher, as a run does; return its counts."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    trackers = Trackers([(name, factory, options)], state_path=run_dir / "trackers.json", redact=Redactor(), warn=warnings.append)
    trackers.begin(sample_run_start(run_dir, previous=previous))
    for record in sample_epochs(epochs, first_epoch):
        trackers.epoch(record)
    for sample in sample_memory():
        trackers.memory(sample)
    counts: dict[str, Any] = trackers.end(end)[name]
    assert counts["errors"] == 0, f"the tracker raised {counts['errors']} error(s); first: {counts['first_error']}"
    assert counts["finished"], "the tracker did not finish within its finish_timeout_s"
    assert counts["dropped"] == counts["skipped"] == 0, f"events lost: {counts}"
    assert not warnings, f"the dispatcher warned: {warnings}"
    return counts


def check_statuses(factory: TrackerFactory, options: dict[str, Any], run_dir: Path) -> list[str]:
    """A completed, a failed and an interrupted run, each in its own run directory."""
    ends = {
        "completed": RunEnd("completed", summary=sample_summary(run_dir), files=sample_files(Path(run_dir) / "completed")),
        "failed": RunEnd(
            "failed",
            reason="training diverged (NaN/inf loss): loss became nan at step 12",
            files=sample_files(Path(run_dir) / "failed"),
        ),
        "interrupted": RunEnd("interrupted", reason="interrupted by the user (SIGINT)"),
    }
    assert set(ends) == set(STATUSES)
    for status, end in ends.items():
        run_dispatched(factory, options, Path(run_dir) / status, end, epochs=1 if status != "completed" else 2)
    return list(ends)


def check_resume(factory: TrackerFactory, options: dict[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """An interrupted run resumed in the same run directory gets its state back and works."""
    run_dir = Path(run_dir)
    run_dispatched(factory, options, run_dir, RunEnd("interrupted", reason="interrupted by the user (SIGINT)"), epochs=1)
    path = run_dir / "trackers.json"
    state = json.loads(path.read_text(encoding="utf-8")).get("conformance") if path.exists() else None
    end = RunEnd("completed", summary=sample_summary(run_dir), files=sample_files(run_dir))
    run_dispatched(factory, options, run_dir, end, previous=state or {}, epochs=1, first_epoch=2)
    return state


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out.extend(p for p in path.rglob("*") if p.is_file())
    return out


def check_no_credentials(paths: Iterable[Path], secret: str = FAKE_SECRET) -> int:
    """Assert ``secret`` is in none of the files under ``paths``; return how many were read."""
    files = _files(paths)
    for path in files:
        data = path.read_bytes()
        assert secret.encode() not in data, f"a credential was written to {path}"
    return len(files)


def check_tracker(
    factory: TrackerFactory,
    options: dict[str, Any] | None = None,
    *,
    run_dir: Path,
    outputs: Iterable[Path] = (),
    credentials: Iterable[str] = (),
) -> ConformanceReport:
    """Run every check; ``outputs`` are where the tracker writes besides ``run_dir``;
    ``credentials`` the environment variables it reads secrets from (set to a fake
    value during the checks, then restored)."""
    options = dict(options or {})
    run_dir = Path(run_dir)
    names = list(credentials)
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: FAKE_SECRET for name in names})
    try:
        report = check_direct(factory, options, run_dir / "direct")
        report.statuses = check_statuses(factory, options, run_dir / "statuses")
        report.counts = run_dispatched(
            factory,
            options,
            run_dir / "dispatched",
            RunEnd("completed", summary=sample_summary(run_dir), files=sample_files(run_dir / "dispatched")),
        )
        check_resume(factory, options, run_dir / "resumed")
        if names:
            check_no_credentials([run_dir, *outputs])
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return report


__all__ = [
    "FAKE_SECRET",
    "ConformanceReport",
    "check_direct",
    "check_no_credentials",
    "check_resume",
    "check_shape",
    "check_statuses",
    "check_tracker",
    "run_dispatched",
    "sample_config",
    "sample_epochs",
    "sample_files",
    "sample_memory",
    "sample_run_start",
    "sample_summary",
]
