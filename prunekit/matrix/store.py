"""The matrix directory and what each run directory's files say about the run.

Layout of ``--out DIR``::

    DIR/matrix.json          the spec, its hash, the expanded runs and what was skipped (credentials masked)
    DIR/matrix.lock          held while a matrix process works in DIR
    DIR/runs/<id>/           one run directory per run (written by the runner)
    DIR/runs/<id>/failure.json  why a run failed (written by the matrix)
    DIR/logs/<id>.log        the child's stdout and stderr
    DIR/slurm/               submitit's job files and Slurm's job logs (--executor slurm)

A run is finished iff ``summary.json`` exists and is a completed summary: the runner writes
it atomically, last. A summary that does not parse is ``malformed``, and the run is redone.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, TextIO

from prunekit import __version__
from prunekit.core.rundir import layout as rundir
from prunekit.core.rundir.files import write_json
from prunekit.core.rundir.layout import FAILED, FAILURE, FINISHED, INTERRUPTED, LOGS, MALFORMED, NEW, RUNS, SLURM, SUMMARY
from prunekit.core.rundir.layout import MATRIX as MATRIX_FILE
from prunekit.core.tracking.redact import Redactor
from prunekit.errors import UsageError
from prunekit.matrix.expand import Plan

LOCK_FILE = "matrix.lock"
FORMAT = 1

__all__ = ["FAILED", "FAILURE", "FINISHED", "INTERRUPTED", "MALFORMED", "NEW", "LOGS", "RUNS", "MATRIX_FILE", "SLURM", "SUMMARY"]


def read_matrix_file(out: Path) -> dict[str, Any] | None:
    """The recorded matrix, ``None`` if there is none; UsageError if unreadable."""
    path = Path(out) / MATRIX_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not readable JSON ({exc}); use another --out.") from None
    if not isinstance(data, dict) or "spec_hash" not in data:
        raise UsageError(f"{path} is not a prunekit matrix record; use another --out.")
    return data


def check_out(out: Path, plan: Plan) -> None:
    """Fail, writing nothing, if ``out`` cannot hold this matrix."""
    try:
        _check_out(Path(out), plan)
    except OSError as exc:  # a name too long, a loop of links, ...
        raise UsageError(f"Cannot use --out {out}: {exc.strerror or exc}.") from None


def _check_out(out: Path, plan: Plan) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory.")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"Cannot use --out {out}: it is not a writable directory.")
    if out.is_dir():
        recorded = read_matrix_file(out)
        if recorded is not None:
            if recorded["spec_hash"] != plan.spec.spec_hash:
                raise UsageError(
                    f"--out {out} holds a different matrix ('{recorded.get('name', '?')}', spec hash "
                    f"{recorded['spec_hash']}; this spec's is {plan.spec.spec_hash}). Use another --out, "
                    "or the spec that made it to resume."
                )
        elif any(p.name != LOCK_FILE for p in out.iterdir()):
            raise UsageError(f"--out {out} exists, is not empty and holds no {MATRIX_FILE}; use another --out.")
        return
    probe = out.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise UsageError(f"Cannot create --out {out}: {probe} is not a writable directory.")


def run_state(out: Path, run_id: str) -> str:
    """finished, malformed (an unusable summary), failed, interrupted (no result) or new."""
    return rundir.state(Path(out) / RUNS / run_id)


class MatrixLock:
    """An exclusive lock on DIR/matrix.lock, released by the kernel if the process dies."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LOCK_FILE
        self.handle: TextIO | None = None

    def __enter__(self) -> MatrixLock:
        self.handle = open(self.path, "a+", encoding="utf-8")
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.close()
            raise UsageError(
                f"{self.path.parent} is in use by another prunekit matrix process; wait for it or stop it."
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


def prepare(out: Path, plan: Plan) -> None:
    """Create the layout and record the matrix (atomically). Call while holding the lock."""
    out = Path(out)
    (out / RUNS).mkdir(parents=True, exist_ok=True)
    (out / LOGS).mkdir(exist_ok=True)
    previous = read_matrix_file(out) or {}
    write_json(out / MATRIX_FILE, Redactor()(matrix_record(plan) | {"jobs": previous.get("jobs", {})}))


def record_jobs(out: Path, jobs: dict[str, dict[str, Any]]) -> None:
    """Add scheduler jobs (run id -> {executor, job_id, submitted_at}) to matrix.json. Call holding the lock."""
    data = read_matrix_file(out) or {}
    data["jobs"] = data.get("jobs", {}) | jobs
    write_json(Path(out) / MATRIX_FILE, data)


def recorded_jobs(out: Path) -> dict[str, dict[str, Any]]:
    """The scheduler jobs matrix.json records, by run id."""
    try:
        jobs: dict[str, dict[str, Any]] = (read_matrix_file(out) or {}).get("jobs", {})
        return jobs
    except UsageError:
        return {}


def matrix_record(plan: Plan) -> dict[str, Any]:
    spec = plan.spec
    return {
        "format": FORMAT,
        "name": spec.name,
        "description": spec.description,
        "source": spec.source,
        "spec_hash": spec.spec_hash,
        "spec": spec.normalized,
        "optimizers_expanded": plan.optimizers,
        "runs": [r.describe() for r in plan.runs],
        "skipped": [s.describe() for s in plan.skipped],
        "prunekit_version": __version__,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def clear_run(out: Path, run_id: str) -> None:
    """Remove a run's directory and log before it is (re)done."""
    shutil.rmtree(Path(out) / RUNS / run_id, ignore_errors=True)
    (Path(out) / LOGS / f"{run_id}.log").unlink(missing_ok=True)


def resumable(out: Path, run_id: str) -> bool:
    """An unfinished run with a checkpoint: it is continued from there, not started again."""
    run_dir = Path(out) / RUNS / run_id
    return (run_dir / rundir.CHECKPOINT).exists() and not (run_dir / rundir.SUMMARY).exists()


def forget_failure(out: Path, run_id: str) -> None:
    """Remove a run's failure record before it is resumed from its checkpoint."""
    (Path(out) / RUNS / run_id / rundir.FAILURE).unlink(missing_ok=True)


def reset_run(out: Path, run_id: str) -> bool:
    """Before a run is (re)done: True if it resumes from its checkpoint (its failure record
    is dropped, its directory and log kept), else its directory and log are removed."""
    if resumable(out, run_id):
        forget_failure(out, run_id)
        return True
    clear_run(out, run_id)
    return False


def write_failure(out: Path, run_id: str, record: dict[str, Any]) -> None:
    rundir.write_failure(Path(out) / RUNS / run_id, Redactor()(record))
