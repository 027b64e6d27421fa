"""Run trackers off the training thread: one bounded buffer and worker thread each.

The training (and sampling) threads only append to a buffer, which never
blocks: when a slow tracker's buffer is full, the event is dropped and
counted. The tracker's factory and every call run on its worker thread; an
exception is counted, the first one shown once (credentials redacted), and
training goes on. A tracker whose factory or ``start`` raised gets nothing
more. At the end, the run waits at most ``finish_timeout_s`` for each tracker
to drain and finish, then abandons it (counted as an error).
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prunekit.core.tracking.protocol import FINISH_TIMEOUT, RunEnd, RunStart
from prunekit.core.tracking.redact import Redactor

#: Events a tracker's buffer holds before new epoch/memory events are dropped.
CAPACITY = 10_000
_METHODS = {"epoch": "log_epoch", "memory": "log_memory", "finish": "finish"}
_UNKNOWN = object()


class TrackerWorker:
    """One tracker: its buffer, thread and counts."""

    def __init__(
        self,
        name: str,
        factory: Callable[..., Any],
        options: dict[str, Any],
        *,
        finish_timeout_s: float,
        redact: Redactor,
        warn: Callable[[str], None],
        save_state: Callable[[str, dict[str, Any]], None],
        capacity: int = CAPACITY,
    ) -> None:
        self.name = name
        self.factory = factory
        self.options = options
        self.finish_timeout_s = finish_timeout_s
        self.redact = redact
        self.warn = warn
        self.save_state = save_state
        self.capacity = capacity
        self.interval: Any = _UNKNOWN  # the tracker's memory_interval_s, once it exists
        self.last_memory: dict[str, float] = {}
        self.counts = {"delivered": 0, "errors": 0, "dropped": 0, "skipped": 0}
        self.first_error: str | None = None
        self.last_error: str | None = None
        self.finished = False
        self.begun = False
        self.end_wait_s = 0.0  # how long the end of the run waited for this tracker
        self._buffer: collections.deque[tuple[str, Any]] = collections.deque()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=f"prunekit-tracker-{name}", daemon=True)

    # -- called from the training and sampling threads; never blocks for long --
    def submit(self, kind: str, payload: Any) -> None:
        with self._ready:
            if kind not in ("start", "finish") and len(self._buffer) >= self.capacity:
                self.counts["dropped"] += 1
                if self.counts["dropped"] == 1:
                    self.warn(f"tracker '{self.name}' is falling behind; its events are dropped and counted.")
                return
            self._buffer.append((kind, payload))
            self._ready.notify()

    def memory(self, sample: dict[str, Any]) -> None:
        if self.interval is _UNKNOWN:  # the tracker does not exist yet: its worker filters
            self.submit("memory?", sample)
        elif self.interval is not None and self._due(sample, self.last_memory):
            self.submit("memory", sample)

    def _due(self, sample: dict[str, Any], last_sent: dict[str, float]) -> bool:
        """At most one sample per sampler every ``memory_interval_s``."""
        key, t = sample.get("sampler", ""), float(sample.get("t", 0.0))
        last = last_sent.get(key)
        if last is not None and t - last < self.interval:
            return False
        last_sent[key] = t
        return True

    # -- the worker thread --
    def _next(self) -> tuple[str, Any]:
        with self._ready:
            while not self._buffer:
                self._ready.wait()
            return self._buffer.popleft()

    def _loop(self) -> None:
        tracker = None
        early: dict[str, float] = {}  # rate limit of samples queued before the tracker existed
        while True:
            kind, payload = self._next()
            if kind == "memory?":
                if tracker is not None and (self.interval is None or not self._due(payload, early)):
                    continue
                kind = "memory"
            if kind != "start" and tracker is None:
                self.counts["skipped"] += 1
            else:
                try:
                    if kind == "start":
                        tracker = self.factory(**self.options)
                        self.interval = getattr(tracker, "memory_interval_s", None)
                        state = tracker.start(payload)
                        if state:
                            self.save_state(self.name, dict(state))
                    else:
                        getattr(tracker, _METHODS[kind])(payload)
                    self.counts["delivered"] += 1
                except BaseException as exc:  # noqa: BLE001 - a tracker never takes the run down
                    self._error(exc)
                    if kind == "start":
                        tracker, self.interval = None, None
            if kind == "finish":
                self.finished = True
                return

    def _error(self, exc: BaseException) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = self.redact.text(f"{type(exc).__name__}: {text}"[:500])
        self.counts["errors"] += 1
        self.last_error = message
        if self.first_error is None:
            self.first_error = message
            self.warn(f"tracker '{self.name}' failed ({message}); the run goes on, errors are counted in summary.json.")

    # -- lifecycle --
    def begin(self, run: RunStart) -> None:
        self.submit("start", run)
        self._thread.start()
        self.begun = True

    def summary(self) -> dict[str, Any]:
        return {
            **self.counts,
            "finished": self.finished,
            "end_wait_s": round(self.end_wait_s, 3),
            "first_error": self.first_error,
            "last_error": self.last_error,
            "options": self.redact(self.options),
        }


class Trackers:
    """Every tracker of one run. Methods are safe to call from any thread."""

    def __init__(
        self,
        chosen: list[tuple[str, Callable[..., Any], dict[str, Any]]],
        *,
        state_path: Path | None,
        redact: Redactor,
        warn: Callable[[str], None],
        capacity: int = CAPACITY,
    ) -> None:
        """``chosen`` lists (name, factory, resolved options) per tracker;
        ``state_path`` is where what each ``start`` returned is kept."""
        self.state_path = state_path
        self.redact = redact
        self._state_lock = threading.Lock()
        self.workers = []
        for name, factory, options in chosen:
            options = dict(options)
            timeout = float(options.pop(FINISH_TIMEOUT.name, FINISH_TIMEOUT.default))
            self.workers.append(
                TrackerWorker(
                    name,
                    factory,
                    options,
                    finish_timeout_s=timeout,
                    redact=redact,
                    warn=warn,
                    save_state=self.save_state,
                    capacity=capacity,
                )
            )

    def previous_state(self) -> dict[str, dict[str, Any]]:
        """What each tracker's ``start`` returned in an earlier attempt of this run directory."""
        return _read_json(self.state_path) if self.state_path is not None else {}

    def begin(self, run: RunStart) -> None:
        for worker in self.workers:
            worker.begin(run)

    def epoch(self, record: dict[str, Any]) -> None:
        for worker in self.workers:
            worker.submit("epoch", record)

    def memory(self, sample: dict[str, Any]) -> None:
        for worker in self.workers:
            worker.memory(sample)

    def end(self, end: RunEnd) -> dict[str, Any]:
        """Send the end to every tracker, wait (bounded) for each, return the counts."""
        begun = [w for w in self.workers if w.begun]
        for worker in begun:
            worker.submit("finish", end)
        started = time.monotonic()
        for worker in begun:
            remaining = worker.finish_timeout_s - (time.monotonic() - started)
            worker._thread.join(max(0.0, remaining))
            worker.end_wait_s = time.monotonic() - started
            if worker._thread.is_alive():
                worker.counts["errors"] += 1
                worker.last_error = f"did not finish within {worker.finish_timeout_s:g} s; abandoned"
                worker.first_error = worker.first_error or worker.last_error
                worker.warn(f"tracker '{worker.name}' {worker.last_error}.")
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return {worker.name: worker.summary() for worker in self.workers}

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        """Keep what a tracker's ``start`` returned, for a resumed run (atomic write)."""
        if self.state_path is None:
            return
        from prunekit.core.rundir.files import write_json

        with self._state_lock:
            data = _read_json(self.state_path)
            data[name] = self.redact(state)  # the run directory never holds a credential
            write_json(self.state_path, data)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
