"""The tracker conformance kit passes a correct tracker and names what is wrong with broken ones."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from prunekit.testing.tracker_conformance import FAKE_SECRET, check_tracker


class FileTracker:
    """A correct tracker: appends every event to LOG_DIR/<run name>.jsonl."""

    memory_interval_s = 1.0

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)

    def _write(self, event, data):
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": event, "data": data}, default=str) + "\n")

    def start(self, run):
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.log_dir / f"{run.run_dir.parent.name}-{run.name}.jsonl"
        self._write("start", {"config": run.config, "previous": run.previous})
        return {"path": str(self.path)}

    def log_epoch(self, record):
        self._write("epoch", record)

    def log_memory(self, sample):
        self._write("memory", sample)

    def finish(self, end):
        self._write("finish", {"status": end.status, "reason": end.reason, "summary": end.summary})


def test_a_correct_tracker_passes(tmp_path):
    logs = tmp_path / "logs"
    report = check_tracker(
        FileTracker, {"log_dir": str(logs)}, run_dir=tmp_path / "runs", outputs=[logs], credentials=["FILETRACKER_TOKEN"]
    )
    assert report.statuses == ["completed", "failed", "interrupted"] and report.counts["errors"] == 0
    assert "FILETRACKER_TOKEN" not in os.environ  # restored afterwards
    resumed = [json.loads(line) for line in (logs / "runs-resumed.jsonl").read_text().splitlines()]
    starts = [e["data"]["previous"] for e in resumed if e["event"] == "start"]
    assert starts == [{}, {"path": str(logs / "runs-resumed.jsonl")}]


class NoFinish(FileTracker):
    finish = None


class BadState(FileTracker):
    def start(self, run):
        super().start(run)
        return ["not", "a", "dict"]


class Raises(FileTracker):
    def log_epoch(self, record):
        raise ValueError("cannot log")


class LeaksCredential(FileTracker):
    def start(self, run):
        state = super().start(run)
        self._write("env", dict(os.environ))  # e.g. a tool that dumps its environment
        return state


class BadInterval(FileTracker):
    memory_interval_s = -1


@pytest.mark.parametrize(
    "tracker, message",
    [
        (NoFinish, "lacks part of the tracker protocol"),
        (BadState, "start() must return None or a dict, got list"),
        (Raises, "cannot log"),
        (LeaksCredential, "a credential was written to"),
        (BadInterval, "memory_interval_s must be None or a positive number"),
    ],
)
def test_broken_trackers_fail_with_the_rule_they_break(tmp_path, tracker, message):
    with pytest.raises((AssertionError, TypeError, ValueError)) as info:
        check_tracker(
            tracker,
            {"log_dir": str(tmp_path / "logs")},
            run_dir=tmp_path / "runs",
            outputs=[tmp_path / "logs"],
            credentials=["FILETRACKER_TOKEN"],
        )
    assert message in str(info.value)
    assert os.environ.get("FILETRACKER_TOKEN") != FAKE_SECRET
