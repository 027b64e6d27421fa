"""The tracker dispatcher: calls run off the caller's thread, never block it, and failures are counted."""

from __future__ import annotations

import threading

from prunekit.core.tracking.dispatch import Trackers
from prunekit.core.tracking.protocol import RunEnd
from prunekit.core.tracking.redact import MASK, Redactor
from prunekit.testing.tracker_conformance import sample_epochs, sample_memory, sample_run_start


class Recorder:
    """Records every call and the thread it ran on."""

    def __init__(self, memory_interval_s=None, fail_on=(), gate=None):
        self.memory_interval_s = memory_interval_s
        self.fail_on = fail_on
        self.gate = gate
        self.calls = []

    def _call(self, name, payload):
        if self.gate is not None:
            self.gate.wait()
        self.calls.append((name, payload, threading.current_thread().name))
        if name in self.fail_on:
            raise ConnectionError(f"{name} failed: http://user:hunter2pass@tracker.example/api")

    def start(self, run):
        self._call("start", run)
        return {"id": "abc"}

    def log_epoch(self, record):
        self._call("epoch", record)

    def log_memory(self, sample):
        self._call("memory", sample)

    def finish(self, end):
        self._call("finish", end)


def make(tracker, tmp_path, warnings, capacity=10_000, timeout=10.0):
    chosen = [("rec", lambda: tracker, {"finish_timeout_s": timeout})]
    return Trackers(chosen, state_path=tmp_path / "trackers.json", redact=Redactor(), warn=warnings.append, capacity=capacity)


def test_calls_run_in_order_on_the_trackers_own_thread(tmp_path):
    tracker, warnings = Recorder(memory_interval_s=1.0), []
    trackers = make(tracker, tmp_path, warnings)
    trackers.begin(sample_run_start(tmp_path))
    for record in sample_epochs():
        trackers.epoch(record)
    for sample in sample_memory(6):  # 0.5 s apart: one in two passes the 1 s rate
        trackers.memory(sample)
    counts = trackers.end(RunEnd("completed"))["rec"]
    names = [c[0] for c in tracker.calls]
    assert names == ["start", "epoch", "epoch", "memory", "memory", "memory", "finish"]
    assert [c[1]["t"] for c in tracker.calls if c[0] == "memory"] == [0.0, 1.0, 2.0]
    assert {c[2] for c in tracker.calls} == {"prunekit-tracker-rec"}
    assert counts["delivered"] == 7 and counts["errors"] == 0 and counts["finished"]
    assert (tmp_path / "trackers.json").read_text().count('"abc"') == 1
    assert not warnings


def test_a_blocked_tracker_never_blocks_the_caller_and_is_abandoned_at_the_end(tmp_path):
    gate, warnings = threading.Event(), []
    trackers = make(Recorder(gate=gate), tmp_path, warnings, capacity=3, timeout=0.2)
    trackers.begin(sample_run_start(tmp_path))
    for record in sample_epochs(10):  # the tracker is stuck in its factory's start: the buffer fills
        trackers.epoch(record)
    counts = trackers.end(RunEnd("completed"))["rec"]
    gate.set()
    assert counts["dropped"] == 10 - 3
    assert counts["errors"] == 1 and not counts["finished"]
    assert "did not finish within 0.2 s" in counts["first_error"] and counts["end_wait_s"] >= 0.2
    assert len([w for w in warnings if "falling behind" in w]) == 1


def test_a_failing_tracker_is_counted_shown_once_and_redacted(tmp_path):
    warnings = []
    tracker = Recorder(fail_on=("epoch",))
    trackers = make(tracker, tmp_path, warnings)
    trackers.begin(sample_run_start(tmp_path))
    for record in sample_epochs(3):
        trackers.epoch(record)
    counts = trackers.end(RunEnd("completed"))["rec"]
    assert counts["errors"] == 3 and counts["delivered"] == 2 and counts["finished"]
    assert len(warnings) == 1 and "ConnectionError" in warnings[0]
    assert "hunter2pass" not in warnings[0] and f"http://{MASK}@tracker.example" in counts["first_error"]
    assert [c[0] for c in tracker.calls][-1] == "finish"  # later events still delivered


def test_a_tracker_whose_start_failed_gets_nothing_more(tmp_path):
    warnings = []
    tracker = Recorder(fail_on=("start",), memory_interval_s=0.1)
    trackers = make(tracker, tmp_path, warnings)
    trackers.begin(sample_run_start(tmp_path))
    trackers.epoch(sample_epochs(1)[0])
    counts = trackers.end(RunEnd("failed", reason="boom"))["rec"]
    assert [c[0] for c in tracker.calls] == ["start"]
    assert counts["errors"] == 1 and counts["skipped"] == 2 and counts["finished"]
    assert not (tmp_path / "trackers.json").exists()


def test_a_factory_that_raises_is_a_counted_error(tmp_path):
    def broken():
        raise ImportError("No module named 'mytool'")

    warnings = []
    trackers = Trackers([("bad", broken, {})], state_path=None, redact=Redactor(), warn=warnings.append)
    trackers.begin(sample_run_start(tmp_path))
    trackers.epoch(sample_epochs(1)[0])
    counts = trackers.end(RunEnd("completed"))["bad"]
    assert counts["errors"] == 1 and counts["skipped"] == 2
    assert warnings == [
        "tracker 'bad' failed (ImportError: No module named 'mytool'); the run goes on, errors are counted in summary.json."
    ]


def test_redactor_masks_credential_variables_and_uri_user_info(monkeypatch):
    monkeypatch.setenv("MYTOOL_API_KEY", "k-1234567890")
    monkeypatch.setenv("CUSTOM_VAR", "custom-secret-value")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    redact = Redactor(["CUSTOM_VAR"])
    data = {
        "argv": ["prunekit", "--tracker-opt", "x.uri=https://bob:pw@host:5000/p"],
        "n": 1,
        "note": "key k-1234567890 and custom-secret-value",
        "threads": "1",
    }
    assert redact(data) == {
        "argv": ["prunekit", "--tracker-opt", f"x.uri=https://{MASK}@host:5000/p"],
        "n": 1,
        "note": f"key {MASK} and {MASK}",
        "threads": "1",
    }
