"""What a matrix child left behind: its progress so far, its log's tail, and the line or
``failure.json`` that says how it ended."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from prunekit.core.rundir import layout as rundir
from prunekit.matrix import store
from prunekit.matrix.expand import PlannedRun
from prunekit.matrix.worker import FAILURE_MARK

LOG_TAIL_LINES = 30


def read_progress(run_dir: Path) -> tuple[int, float | None]:
    """Epochs completed so far and the latest test accuracy (complete lines only)."""
    records = rundir.read_metrics(run_dir)
    if not records:
        return 0, None
    accuracy = records[-1].get("test_accuracy")
    return len(records), float(accuracy) if isinstance(accuracy, (int, float)) else None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
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
    out: Path, run: PlannedRun, returncode: int | None, log_path: Path, wall: float, reason: str | None = None, **extra: Any
) -> str:
    """Write the run's failure.json (reason from the exit status and log unless given); return the reason."""
    tail = log_tail(log_path)
    signal_name = None
    if reason is None:
        reason, signal_name = failure_reason(returncode if returncode is not None else 1, tail)
    epochs, _ = read_progress(Path(out) / store.RUNS / run.id)
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
