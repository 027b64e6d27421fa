"""Run the matrix's runs in child processes, ``jobs`` at a time, recording failures.

CPU: each child gets ``max(1, cores // jobs)`` torch threads. CUDA (runs on
``device: auto`` or ``cuda`` and a GPU visible): one child per visible device,
pinned with ``CUDA_VISIBLE_DEVICES``; ``jobs`` is capped at the device count.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from prunekit.core import rundir
from prunekit.core.config import RunConfig
from prunekit.matrix import store
from prunekit.matrix.expand import Plan, PlannedRun
from prunekit.matrix.progress import Active, MatrixProgress
from prunekit.matrix.worker import EXIT_INTERRUPTED, FAILURE_MARK, RESUME_FLAG, THREADS_ENV

POLL_S = 0.25
LOG_TAIL_LINES = 30
STOP_GRACE_S = 30.0  # children checkpoint on SIGTERM before they exit


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _wants_cuda(configs: list[RunConfig]) -> bool:
    return bool(configs) and all(c.device in ("auto", "cuda") for c in configs)


def _visible_devices() -> list[str]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return []
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


@dataclass
class Slots:
    """Environment of each concurrent child and a description of the split."""

    envs: list[dict[str, str]]
    description: str


def make_slots(jobs: int, configs: list[RunConfig], threads: int | None = None) -> Slots:
    """One environment per concurrent child; ``threads`` overrides the fair CPU split."""
    cores = available_cores()
    devices = _visible_devices() if _wants_cuda(configs) else []
    if devices:
        n = min(jobs, len(devices))
        threads = threads or max(1, cores // n)
        envs = [_thread_env(threads) | {"CUDA_VISIBLE_DEVICES": devices[i]} for i in range(n)]
        capped = f" (--jobs {jobs} capped at {len(devices)} visible GPUs)" if jobs > n else ""
        return Slots(envs, f"{n} job(s), one per GPU ({', '.join(devices[:n])}), {threads} CPU thread(s) each{capped}")
    threads = threads or max(1, cores // jobs)
    return Slots(
        [_thread_env(threads) for _ in range(jobs)], f"{jobs} job(s) on CPU, {threads} torch thread(s) each ({cores} cores)"
    )


def _thread_env(threads: int) -> dict[str, str]:
    n = str(threads)
    return {THREADS_ENV: n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}


@dataclass
class Child:
    run: PlannedRun
    proc: subprocess.Popen
    log: TextIO
    log_path: Path
    started: float
    active: Active


@dataclass
class Outcome:
    """What happened to the runs this invocation executed."""

    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _read_metrics(run_dir: Path) -> tuple[int, float | None]:
    """Epochs completed so far and the latest test accuracy (complete lines only)."""
    records = rundir.read_metrics(run_dir)
    if not records:
        return 0, None
    accuracy = records[-1].get("test_accuracy")
    return len(records), float(accuracy) if isinstance(accuracy, (int, float)) else None


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def failure_reason(returncode: int, tail: list[str]) -> tuple[str, str | None]:
    """A one-line reason and the signal name, if a signal ended the child."""
    marked = [line[len(FAILURE_MARK) :] for line in tail if line.startswith(FAILURE_MARK)]
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (for example by the kernel's out-of-memory killer, or kill -9)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}", name
    if marked:
        return marked[-1], None
    if returncode == 0:
        return "the run exited without writing summary.json", None
    last = next((line for line in reversed(tail) if line.strip()), "")
    return f"exited with status {returncode}" + (f": {last.strip()}" if last else ""), None


def finished_detail(out: Path, run_id: str, wall: float) -> str:
    """One line about a finished run: accuracy, achieved and target sparsity, wall time."""
    try:
        s = rundir.read_summary(Path(out) / store.RUNS / run_id)
        return (
            f"{s['final_test_accuracy']:.2f}% final test accuracy, sparsity {100 * s['achieved_sparsity']:.1f}% "
            f"(target {100 * s['target_sparsity']:.0f}%{'' if s['target_reached'] else ', MISSED'}), {wall:.1f} s"
        )
    except rundir.Malformed:
        return f"{wall:.1f} s"


def record_failure(
    out: Path, run: PlannedRun, returncode: int | None, log_path: Path, wall: float, reason: str | None = None, **extra
) -> str:
    """Write the run's failure.json (reason from the exit status and log unless given); return the reason."""
    tail = _tail(log_path)
    signal_name = None
    if reason is None:
        reason, signal_name = failure_reason(returncode if returncode is not None else 1, tail)
    epochs, _ = _read_metrics(Path(out) / store.RUNS / run.id)
    try:  # the runner's own record of an exception: keep its traceback
        own = rundir.read_failure(Path(out) / store.RUNS / run.id)
    except rundir.Malformed:
        own = {}
    extra = {k: own[k] for k in ("exception", "traceback") if k in own} | extra
    store.write_failure(
        out,
        run.id,
        {
            "status": "failed",
            "run_id": run.id,
            "reason": reason,
            "returncode": returncode,
            "signal": signal_name,
            "epochs_completed": epochs,
            "wall_time_s": wall,
            "log": str(Path(store.LOGS) / log_path.name),
            "log_tail": tail,
            "config": run.describe()["config"],
            "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        | extra,
    )
    return reason


class Scheduler:
    """Executes the unfinished runs of a plan in ``out``."""

    def __init__(
        self,
        out: Path,
        plan: Plan,
        slots: Slots,
        progress: MatrixProgress,
        python: str = sys.executable,
        on_start: Callable[[Child], None] | None = None,
    ) -> None:
        self.out = Path(out)
        self.plan = plan
        self.slots = slots
        self.progress = progress
        self.python = python
        self.on_start = on_start
        self.active: dict[int, Child] = {}
        self.outcome = Outcome()

    def _start(self, run: PlannedRun, slot: int) -> Child:
        resuming = store.resumable(self.out, run.id)  # continued from its checkpoint, log appended
        if resuming:
            store.forget_failure(self.out, run.id)
        else:
            store.clear_run(self.out, run.id)
        run_dir = self.out / store.RUNS / run.id
        config = run.config.to_dict() | {"out": str(run_dir.resolve()), "quiet": True, "group": self.plan.spec.name}
        log_path = self.out / store.LOGS / f"{run.id}.log"
        log = open(log_path, "a" if resuming else "w", encoding="utf-8")
        env = os.environ | self.slots.envs[slot] | {"PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [
                self.python,
                "-m",
                "prunekit.matrix.worker",
                str(os.getpid()),
                json.dumps(config),
                *([RESUME_FLAG] if resuming else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        child = Child(run, proc, log, log_path, time.monotonic(), Active(run.id, run.config.epochs))
        self.progress.started(child.active)
        if self.on_start is not None:
            self.on_start(child)
        return child

    def _finish(self, child: Child, returncode: int) -> None:
        child.log.close()
        wall = time.monotonic() - child.started
        if returncode == 0 and rundir.state(self.out / store.RUNS / child.run.id) == rundir.FINISHED:
            self.outcome.finished.append(child.run.id)
            self.progress.finished(child.active, True, finished_detail(self.out, child.run.id, wall))
            return
        tail = _tail(child.log_path)
        if returncode == EXIT_INTERRUPTED and store.resumable(self.out, child.run.id):
            reason = next((line for line in reversed(tail) if line.startswith("Run stopped")), "Run stopped")
            reason += " (the next matrix run continues it)"
            self.outcome.failed[child.run.id] = reason
            self.progress.finished(child.active, False, reason)
            return
        reason = record_failure(self.out, child.run, returncode, child.log_path, wall)
        self.outcome.failed[child.run.id] = reason
        self.progress.finished(child.active, False, reason)

    def _poll(self) -> list[int]:
        freed = []
        for slot, child in list(self.active.items()):
            epoch, acc = _read_metrics(self.out / store.RUNS / child.run.id)
            child.active.epoch, child.active.accuracy = epoch, acc
            self.progress.update(child.active)
            returncode = child.proc.poll()
            if returncode is not None:
                del self.active[slot]
                self._finish(child, returncode)
                freed.append(slot)
        return freed

    def stop_all(self) -> None:
        """Stop running children (SIGTERM: each writes a checkpoint); a rerun continues them."""
        for child in self.active.values():
            if child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.active.values():
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            child.log.close()
        self.active.clear()

    def execute(self, runs: list[PlannedRun]) -> Outcome:
        pending = list(runs)
        free = list(range(len(self.slots.envs)))
        try:
            while pending or self.active:
                while pending and free:
                    slot = free.pop(0)
                    self.active[slot] = self._start(pending.pop(0), slot)
                time.sleep(POLL_S)
                free.extend(self._poll())
                free.sort()
        except BaseException:
            self.stop_all()
            raise
        return self.outcome


def todo(
    out: Path, plan: Plan, keep_failed: bool = False, live: frozenset[str] | set[str] = frozenset()
) -> tuple[list[PlannedRun], dict[str, int]]:
    """The runs to execute now, and how many runs are in each state (``live``: queued or running elsewhere)."""
    counts = {store.FINISHED: 0, store.FAILED: 0, store.INTERRUPTED: 0, store.MALFORMED: 0, store.NEW: 0, "queued": 0}
    runs = []
    for run in plan.runs:
        state = "queued" if run.id in live and store.run_state(out, run.id) != store.FINISHED else store.run_state(out, run.id)
        counts[state] += 1
        if state in (store.FINISHED, "queued") or (state == store.FAILED and keep_failed):
            continue
        runs.append(run)
    return runs, counts
