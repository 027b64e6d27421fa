"""Memory samplers: the protocol, and the background thread that runs them.

A sampler measures memory from one viewpoint (its ``scope``):

- ``process``: this process as the OS sees it (resident set size);
- ``device``: the accelerator as its driver sees it (NVML, amdsmi);
- ``allocator``: PyTorch's caching allocator (exact tensor bytes and peaks).

The core starts every enabled sampler, samples them all on one daemon thread
every ``interval`` seconds, writes each sample to the timeline (JSON lines,
appended as they come) and summarises peak, mean, sample and error counts.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

SCOPES = ("process", "device", "allocator")


class SamplerUnavailable(Exception):
    """Raised by ``Sampler.start`` when it cannot work on this machine.

    The message says what is missing and how to get it, in one line.
    """


@runtime_checkable
class Sampler(Protocol):
    """What a sampler plugin's factory returns.

    ``sample()`` returns named figures; names ending in ``_bytes`` are bytes,
    others carry their unit in the name (``gpu_util_percent``, ``power_watts``).
    Optional methods the core calls when present: ``phase_changed(phase)`` (on
    the training thread, when the run enters ``"train"``, ``"mask_update"`` or
    ``"eval"``) and ``summary() -> dict`` (extra figures for ``summary.json``).
    """

    scope: str

    def start(self) -> None:
        """Acquire resources; raise SamplerUnavailable if this cannot work here."""

    def sample(self) -> dict[str, float]:
        """One reading. May raise; the core counts the error and goes on."""

    def stop(self) -> None:
        """Release resources."""


def check_sampler_state(state: Any) -> None:
    """ValueError unless ``state`` is what :meth:`SamplingThread.state_dict` returns (from a checkpoint)."""
    numbers = (int, float)
    if not isinstance(state, dict) or not isinstance(state.get("stats"), dict):
        raise ValueError("its sampler state is not a mapping of aggregates")
    elapsed = state.get("elapsed_s")
    if not isinstance(elapsed, numbers) or isinstance(elapsed, bool) or not 0 <= elapsed < math.inf:
        raise ValueError(f"its sampler time is {elapsed!r}, not seconds >= 0")
    default = vars(_Stats())
    for name, saved in state["stats"].items():
        fits = isinstance(saved, dict) and set(saved) <= set(default)
        for key, value in saved.items() if fits else ():
            if isinstance(default[key], dict):
                fits = fits and isinstance(value, dict) and all(isinstance(v, numbers) for v in value.values())
            elif key == "last_error":
                fits = fits and (value is None or isinstance(value, str))
            else:
                fits = fits and isinstance(value, int) and not isinstance(value, bool) and value >= 0
        if not fits:
            raise ValueError(f"its aggregates of sampler {name!r} are not what prunekit writes")


class _Stats:
    def __init__(self) -> None:
        self.samples = 0
        self.errors = 0
        self.last_error: str | None = None
        self.peak: dict[str, float] = {}
        self.total: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def add(self, figures: dict[str, float]) -> None:
        self.samples += 1
        for key, value in figures.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            self.peak[key] = max(self.peak.get(key, value), value)
            self.total[key] = self.total.get(key, 0.0) + value
            self.count[key] = self.count.get(key, 0) + 1


class SamplingThread:
    """Runs started samplers on one background thread and writes the timeline."""

    def __init__(
        self,
        samplers: dict[str, Sampler],
        interval: float,
        timeline: Path | None,
        on_sample: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """``on_sample`` receives every timeline record as it is taken (on the
        sampling thread; it must return at once, e.g. by queueing)."""
        self.samplers = samplers
        self.on_sample = on_sample
        self.interval = interval
        self.timeline_path = timeline
        self.phase = "setup"
        self.step = 0
        self._stats = {name: _Stats() for name in samplers}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._t_offset = 0.0

    def set_phase(self, phase: str) -> None:
        """Tell samplers the run entered ``phase`` (called on the training thread)."""
        if phase == self.phase:
            return
        self.phase = phase
        for sampler in self.samplers.values():
            hook = getattr(sampler, "phase_changed", None)
            if hook is not None:
                hook(phase)

    def start(self) -> None:
        if not self.samplers:
            return
        if self.timeline_path is not None:
            self._file = open(self.timeline_path, "a", encoding="utf-8", buffering=1)
        self._t0 = time.monotonic() - self._t_offset
        self.sample_all()
        self._thread = threading.Thread(target=self._loop, name="prunekit-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_all()

    def sample_all(self) -> None:
        """Take one sample from every sampler and append it to the timeline."""
        with self._lock:
            now = time.monotonic()
            for name, sampler in self.samplers.items():
                stats = self._stats[name]
                try:
                    figures = {k: float(v) for k, v in sampler.sample().items() if v is not None}
                except Exception as exc:  # counted and reported, never swallowed silently
                    stats.errors += 1
                    stats.last_error = f"{type(exc).__name__}: {exc}"
                    continue
                stats.add(figures)
                if self._file is not None or self.on_sample is not None:
                    record = {
                        "t": round(now - self._t0, 4),
                        "monotonic": now,
                        "sampler": name,
                        "scope": sampler.scope,
                        "phase": self.phase,
                        "step": self.step,
                        "figures": figures,
                    }
                    if self._file is not None:
                        self._file.write(json.dumps(record) + "\n")
                    if self.on_sample is not None:
                        self.on_sample(record)

    def stop(self) -> None:
        """Stop the thread, take a last sample and release every sampler."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample_all()
        if self._file is not None:
            self._file.close()
            self._file = None
        for name, sampler in self.samplers.items():
            try:
                sampler.stop()
            except Exception as exc:
                self._stats[name].errors += 1
                self._stats[name].last_error = f"stop failed: {type(exc).__name__}: {exc}"

    def state_dict(self) -> dict[str, Any]:
        """The aggregates so far, the elapsed time and the timeline's length in bytes (for checkpoints)."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
            size = self.timeline_path.stat().st_size if self.timeline_path and self.timeline_path.exists() else 0
            return {
                "elapsed_s": time.monotonic() - self._t0,
                "timeline_bytes": size,
                "stats": {name: dict(vars(stats)) for name, stats in self._stats.items()},
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the aggregates of a checkpoint (call before :meth:`start`); ``t`` goes on from there."""
        for name, saved in state["stats"].items():
            if name in self._stats:
                vars(self._stats[name]).update(saved)
        self._t_offset = float(state["elapsed_s"])

    def summary(self) -> dict[str, Any]:
        """Per sampler: scope, sample and error counts, peak and mean per figure."""
        out: dict[str, Any] = {}
        for name, sampler in self.samplers.items():
            stats = self._stats[name]
            figures = {key: {"peak": stats.peak[key], "mean": stats.total[key] / stats.count[key]} for key in sorted(stats.peak)}
            entry: dict[str, Any] = {
                "scope": sampler.scope,
                "samples": stats.samples,
                "errors": stats.errors,
                "last_error": stats.last_error,
                "interval_s": self.interval,
                "figures": figures,
            }
            extra = getattr(sampler, "summary", None)
            if extra is not None:  # a sampler's extras never overwrite the core's figures
                entry.update({k: v for k, v in extra().items() if k not in entry})
            out[name] = entry
        return out
