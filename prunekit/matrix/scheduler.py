"""Run the matrix's runs in child processes, ``jobs`` at a time, recording failures.

Each child gets the environment of its slot (:mod:`prunekit.matrix.slots`); what it
leaves behind is read and recorded by :mod:`prunekit.matrix.run_results`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from prunekit.core.rundir import layout as rundir
from prunekit.core.train.preemption import EXIT_INTERRUPTED
from prunekit.matrix import store
from prunekit.matrix.expand import Plan, PlannedRun
from prunekit.matrix.progress import Active, MatrixProgress
from prunekit.matrix.run_results import failure_reason, finished_detail, log_tail, read_progress, record_failure
from prunekit.matrix.slots import Slots
from prunekit.matrix.worker import CONFIG_ENV
from prunekit.matrix.worker import command as worker_command

POLL_S = 0.25
STOP_GRACE_S = 30.0  # children checkpoint on SIGTERM before they exit


@dataclass
class Child:
    run: PlannedRun
    proc: subprocess.Popen[bytes]
    log: TextIO
    log_path: Path
    started: float
    active: Active


@dataclass
class Outcome:
    """What happened to the runs this invocation executed."""

    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    #: Runs whose failure could not be recorded in their directory (it is not writable).
    unrecorded: set[str] = field(default_factory=set)


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

    def _start(self, run: PlannedRun, slot: int) -> Child | None:
        """The started child; ``None`` (the run counted failed, the matrix going on) if its files cannot be prepared."""
        log_path = self.out / store.LOGS / f"{run.id}.log"
        try:
            resuming = store.reset_run(self.out, run.id)  # continued from its checkpoint, log appended
            log = open(log_path, "a" if resuming else "w", encoding="utf-8")
        except OSError as exc:
            self._unstartable(run, exc)
            return None
        run_dir = self.out / store.RUNS / run.id
        config = run.config.to_dict() | {"out": str(run_dir.resolve()), "quiet": True, "group": self.plan.spec.name}
        env = os.environ | self.slots.envs[slot] | {"PYTHONUNBUFFERED": "1", CONFIG_ENV: json.dumps(config)}
        proc = subprocess.Popen(
            [self.python, *worker_command(os.getpid(), resuming)],
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

    def _unstartable(self, run: PlannedRun, exc: OSError) -> None:
        """A run whose directory or log cannot be written: failed, with the reason (nothing can be recorded there)."""
        where = f" {exc.filename}" if exc.filename else ""
        reason = f"cannot prepare its files:{where}: {exc.strerror or exc}"
        active = Active(run.id, run.config.epochs)
        self.progress.started(active)
        self.outcome.failed[run.id] = reason
        self.outcome.unrecorded.add(run.id)
        self.progress.finished(active, False, reason)

    def _finish(self, child: Child, returncode: int) -> None:
        child.log.close()
        wall = time.monotonic() - child.started
        if returncode == 0 and rundir.state(self.out / store.RUNS / child.run.id) == rundir.FINISHED:
            self.outcome.finished.append(child.run.id)
            self.progress.finished(child.active, True, finished_detail(self.out, child.run.id, wall))
            return
        tail = log_tail(child.log_path)
        if returncode == EXIT_INTERRUPTED and store.resumable(self.out, child.run.id):
            reason = next((line for line in reversed(tail) if line.startswith("Run stopped")), "Run stopped")
            reason += " (the next matrix run continues it)"
            self.outcome.failed[child.run.id] = reason
            self.progress.finished(child.active, False, reason)
            return
        try:
            reason = record_failure(self.out, child.run, returncode, child.log_path, wall)
        except OSError as exc:  # a run directory made read-only under the matrix: that run fails, the rest go on
            reason = f"{failure_reason(returncode, tail)[0]}; its failure.json could not be written ({exc.strerror or exc})"
            self.outcome.unrecorded.add(child.run.id)
        self.outcome.failed[child.run.id] = reason
        self.progress.finished(child.active, False, reason)

    def _poll(self) -> list[int]:
        freed = []
        for slot, child in list(self.active.items()):
            epoch, acc = read_progress(self.out / store.RUNS / child.run.id)
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
                    child = self._start(pending.pop(0), free[0])
                    if child is not None:
                        self.active[free.pop(0)] = child
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
