"""Matrix runs as Slurm jobs, submitted through submitit: checks, submission, job states.

Each pending run becomes one element of a job array (one job per run). The job runs
:class:`prunekit.matrix.slurm_job.SlurmRun`, which starts the same child entry point
as a local run (``python -m prunekit.matrix.worker``), so run directories and
``failure.json`` are the same. Job ids are recorded in ``matrix.json`` under ``jobs``.

Slurm is asked through its own commands (``sinfo``, ``squeue``, ``scontrol``), not
``sacct``: clusters without accounting storage answer those too.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from prunekit.errors import UsageError

if TYPE_CHECKING:
    import submitit

    from prunekit.matrix.expand import PlannedRun

COMMANDS = ("sbatch", "squeue", "sinfo", "scontrol")
QUERY_TIMEOUT_S = 30
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)
_OPT_KEY = re.compile(r"^[a-z][a-z0-9_-]*$")
LIVE = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}


@dataclass(frozen=True)
class SlurmSettings:
    """What each run's job asks Slurm for."""

    partition: str | None = None
    time_min: int | None = None
    gpus_per_run: int = 0
    cpus_per_run: int | None = None
    mem_per_run: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    threads: int | None = None

    def check_values(self) -> None:
        if self.time_min is not None and self.time_min < 1:
            raise UsageError(f"--slurm-time must be at least 1 minute, got {self.time_min}.")
        if self.gpus_per_run < 0:
            raise UsageError(f"--gpus-per-run must be 0 or more, got {self.gpus_per_run}.")
        if self.cpus_per_run is not None and self.cpus_per_run < 1:
            raise UsageError(f"--cpus-per-run must be at least 1, got {self.cpus_per_run}.")
        if self.mem_per_run is not None and not _MEM.match(self.mem_per_run):
            raise UsageError(f"--mem-per-run must be a size such as 4000M or 16G, got '{self.mem_per_run}'.")
        for key in self.options:
            if not _OPT_KEY.match(key):
                raise UsageError(f"--slurm-opt key '{key}' is not an sbatch option name (e.g. account=abc, qos=high).")


def _query(args: list[str]) -> str:
    """Run a Slurm command; UsageError with its first line of error if it fails."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"Slurm does not answer ({args[0]}: {exc}); check the cluster or use --executor local.") from None
    if done.returncode != 0:
        first = (done.stderr or done.stdout).strip().splitlines()
        raise UsageError(
            f"Slurm does not answer ({' '.join(args[:2])}: {first[0] if first else f'exit {done.returncode}'}); "
            "check the cluster or use --executor local."
        )
    return done.stdout


def limit_minutes(text: str) -> int:
    """sinfo's time limit ([D-]HH:MM:SS, MM:SS, MM or infinite) in minutes; 0 means none."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        return 0
    days, b, c = (int(g) if g else None for g in match.group(1, 3, 4))
    a = int(match.group(2))  # the one field always given
    if b is not None and c is not None:  # c is filled only after b
        hours, minutes, seconds = a, b, c
    elif b is not None:
        hours, minutes, seconds = (a, b, 0) if days is not None else (0, a, b)
    else:
        hours, minutes, seconds = (a, 0, 0) if days is not None else (0, a, 0)
    return (days or 0) * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def partitions() -> dict[str, dict[str, str]]:
    """Partitions with their generic resources (gres), time limit and whether each is the default."""
    found: dict[str, dict[str, str]] = {}
    for line in _query(["sinfo", "-h", "-o", "%P|%l|%G"]).splitlines():
        name, _, rest = line.strip().partition("|")
        limit, _, gres = rest.partition("|")
        if not name:
            continue
        default = name.endswith("*")
        entry = found.setdefault(name.rstrip("*"), {"gres": "", "default": "", "limit": limit})
        if gres and gres != "(null)":
            entry["gres"] = ",".join(filter(None, [entry["gres"], gres]))
        if default:
            entry["default"] = "yes"
    return found


def check(settings: SlurmSettings) -> SlurmSettings:
    """Fail with one line, before anything is submitted, if these jobs cannot run here.

    Returns the settings with the time limit filled in: the partition's own when not given.
    """
    settings.check_values()
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UsageError("--executor slurm needs submitit: pip install 'prunekit[slurm]'.") from None
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing:
        raise UsageError(
            f"--executor slurm needs Slurm's {', '.join(missing)} on PATH, not found on this machine; "
            "run on a Slurm login node or use --executor local."
        )
    found = partitions()
    if not found:
        raise UsageError("Slurm lists no partitions (sinfo); check the cluster or use --executor local.")
    if settings.partition is not None and settings.partition not in found:
        raise UsageError(f"Unknown --slurm-partition '{settings.partition}'; partitions here: {', '.join(sorted(found))}.")
    name = settings.partition or next((p for p, e in found.items() if e["default"]), None)
    if settings.gpus_per_run > 0:
        gres = found[name]["gres"] if name else ""
        if "gpu" not in gres:
            where = f"partition '{name}'" if name else "the default partition (none is marked)"
            raise UsageError(
                f"--gpus-per-run {settings.gpus_per_run} but {where} has no GPUs (gres: {gres or 'none'}); "
                "choose a GPU partition with --slurm-partition or use --gpus-per-run 0."
            )
    if settings.time_min is None and name:
        return replace(settings, time_min=limit_minutes(found[name]["limit"]))  # 0: the partition has no limit
    return settings


def queue() -> dict[str, tuple[str, str]]:
    """Every job Slurm still lists: submitit-style id (``123_4`` for array elements) -> (state, reason)."""
    out: dict[str, tuple[str, str]] = {}
    for line in _query(["squeue", "-h", "-r", "-o", "%i|%T|%r"]).splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            out[parts[0]] = (parts[1], parts[2])
    return out


def ended_state(job_id: str) -> str | None:
    """The final state Slurm still remembers for a job (``scontrol``; kept for MinJobAge), else None."""
    try:
        text = _query(["scontrol", "show", "job", "-o", job_id])
    except UsageError:
        return None
    match = re.search(r"\bJobState=(\S+)", text)
    return match.group(1) if match else None


class _NoSacctNoise(logging.Filter):
    """submitit logs 'Bypassing sacct error' on clusters without accounting; prunekit asks squeue instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "sacct" not in record.getMessage()


def executor(folder: Path, settings: SlurmSettings, name: str, runs: int) -> submitit.AutoExecutor:
    """A submitit executor for Slurm with the resources of one run per job."""
    import submitit

    logging.getLogger("submitit").addFilter(_NoSacctNoise())
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = {
        "name": name,
        "nodes": 1,
        "tasks_per_node": 1,
        "slurm_array_parallelism": max(1, runs),
        "stderr_to_stdout": True,
    }
    if settings.time_min is not None:
        params["timeout_min"] = settings.time_min
    if settings.partition:
        params["slurm_partition"] = settings.partition
    if settings.gpus_per_run:
        params["gpus_per_node"] = settings.gpus_per_run
    if settings.cpus_per_run:
        params["cpus_per_task"] = settings.cpus_per_run
    if settings.mem_per_run:
        params["slurm_mem"] = settings.mem_per_run
    if settings.options:
        params["slurm_additional_parameters"] = dict(settings.options)
    ex.update_parameters(**params)
    return ex


def submit(out: Path, runs: list[PlannedRun], settings: SlurmSettings, name: str) -> dict[str, str]:
    """Submit one job per run (a job array); return run id -> Slurm job id."""
    from prunekit.matrix import store
    from prunekit.matrix.slurm_job import SlurmRun

    if not runs:
        return {}
    ex = executor(Path(out) / store.SLURM, settings, name, len(runs))
    for run in runs:
        store.reset_run(out, run.id)  # a stopped run with a checkpoint is resumed by its job
    try:
        with ex.batch():
            jobs = [
                ex.submit(
                    SlurmRun(
                        str(Path(out).resolve()), run.id, run.config.to_dict(), settings.threads, max(1, settings.gpus_per_run)
                    )
                )
                for run in runs
            ]
    except Exception as exc:  # submitit raises on sbatch errors: one line, nothing submitted
        first = str(exc).strip().splitlines()
        raise UsageError(f"sbatch refused the jobs: {first[-1] if first else type(exc).__name__}.") from None
    return {run.id: job.job_id for run, job in zip(runs, jobs)}
