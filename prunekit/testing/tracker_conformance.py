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

from prunekit.core.dispatch import Trackers
from prunekit.core.redact import Redactor
from prunekit.core.tracking import STATUSES, RunEnd, RunStart, Tracker

TrackerFactory = Callable[..., Any]
#: The fake credential put into every credential variable during the checks.
FAKE_SECRET = "prunekit-fake-credential-7d1e0c"
LAYERS = ("conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight")


def sample_config(run_dir: Path) -> dict[str, Any]:
    """A resolved config as ``config.yaml`` holds it."""
    return {
        "model": "lenet5",
        "dataset": "digits",
        "optimizer": "adamw",
        "lr": 0.001,
        "weight_decay": 0.0005,
        "pruner": "magnitude",
        "pruner_opts": {"scope": "global"},
        "sparsity": 0.7,
        "schedule": "gmp",
        "epochs": 2,
        "batch_size": 32,
        "seed": 0,
        "samplers": ["process"],
        "device": "cpu",
        "out": str(run_dir),
        "trackers": ["conformance"],
        "tracker_opts": {},
    }


def sample_run_start(run_dir: Path, *, group: str | None = "conformance-matrix", previous: dict | None = None) -> RunStart:
    """The RunStart the core sends for :func:`sample_config`."""
    return RunStart(
        run_dir=Path(run_dir),
        name=Path(run_dir).name,
        config=sample_config(run_dir),
        group=group,
        resumed=previous is not None,
        previous=dict(previous or {}),
        prunekit_version="0.1.0",
    )


def sample_epochs(epochs: int = 2, first: int = 1) -> list[dict[str, Any]]:
    """Epoch records as ``log_epoch`` receives them (numbers change every epoch)."""
    out = []
    for epoch in range(first, first + epochs):
        sparsity = min(0.7, 0.35 * epoch)
        out.append(
            {
                "epoch": epoch,
                "step": 45 * epoch,
                "train_loss": 2.0 / epoch,
                "train_accuracy": 40.0 + 20 * epoch,
                "test_loss": 2.1 / epoch,
                "test_accuracy": 38.5 + 20 * epoch,
                "sparsity": sparsity,
                "sparsity_all": sparsity * 0.99,
                "scheduled_sparsity": sparsity,
                "lr": 0.001 / epoch,
                "epoch_time_s": 1.25,
                "layer_sparsity": {name: sparsity * (0.8 + 0.1 * i) for i, name in enumerate(LAYERS)},
            }
        )
    return out


def sample_memory(samples: int = 6) -> list[dict[str, Any]]:
    """Timeline records as ``log_memory`` receives them, 0.5 s apart."""
    return [
        {
            "t": 0.5 * i,
            "monotonic": 1000.0 + 0.5 * i,
            "sampler": "process",
            "scope": "process",
            "phase": "train" if i % 3 else "eval",
            "step": 15 * i,
            "figures": {"rss_bytes": float(200_000_000 + 1_000_000 * i)},
        }
        for i in range(samples)
    ]


def sample_summary(run_dir: Path) -> dict[str, Any]:
    """A completed run's summary, ledger included (the shape of ``summary.json``)."""
    ledger = {
        "parameters": 247_000,
        "buffers": 0,
        "gradients": 247_000,
        "optimizer_state": 494_000,
        "optimizer_scalars": 80,
        "pruner_state": 61_470,
        "total": 1_049_550,
        "prunable_weights": 61_470,
        "parameter_count": 61_750,
        "pruner_state_bytes_per_prunable_weight": 1.0,
        "optimizer_state_bytes_per_parameter": 8.0,
    }
    return {
        "status": "completed",
        "run_dir": str(run_dir),
        "model": "lenet5",
        "dataset": "digits",
        "optimizer": "adamw",
        "lr": 0.001,
        "weight_decay": 0.0005,
        "pruner": "magnitude",
        "seed": 0,
        "epochs": 2,
        "batch_size": 32,
        "steps": 90,
        "final_test_accuracy": 78.5,
        "best_test_accuracy": 78.5,
        "best_epoch": 2,
        "final_train_loss": 1.0,
        "final_test_loss": 1.05,
        "target_sparsity": 0.7,
        "achieved_sparsity": 0.7,
        "achieved_sparsity_all_parameters": 0.693,
        "target_reached": True,
        "wall_time_s": 5.0,
        "train_time_s": 3.0,
        "eval_time_s": 0.5,
        "mean_step_time_s": 0.033,
        "ledger": ledger,
        "samplers": {
            "process": {
                "scope": "process",
                "samples": 6,
                "errors": 0,
                "figures": {"rss_bytes": {"peak": 205_000_000.0, "mean": 202_500_000.0}},
            }
        },
        "warnings": [],
        "environment": {"python": "3.11", "argv": ["prunekit", "run"]},
        "prunekit_version": "0.1.0",
    }


def sample_files(run_dir: Path) -> dict[str, Path]:
    """Write the run directory's small text files and return them as RunEnd.files."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "config.yaml": "\n".join(f"{k}: {json.dumps(v)}" for k, v in sample_config(run_dir).items()) + "\n",
        "metrics.jsonl": "".join(
            json.dumps({k: v for k, v in r.items() if k != "layer_sparsity"}) + "\n" for r in sample_epochs()
        ),
        "timeline.jsonl": "".join(json.dumps(r) + "\n" for r in sample_memory()),
    }
    for name, text in files.items():
        (run_dir / name).write_text(text, encoding="utf-8")
    return {name: run_dir / name for name in files}


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
    previous: dict | None = None,
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
    counts = trackers.end(end)[name]
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
