"""What one Slurm job of a matrix runs: the same worker child as a local run.

:class:`SlurmRun` is pickled by submitit at submission and called inside the job. It
starts ``python -m prunekit.matrix.worker`` as its child (crash isolation, the same
``failure.json``), appending to ``DIR/logs/<id>.log``. When Slurm stops the job:

- requeue (``scontrol requeue``, or preemption with requeue): the job ends without a
  record; the requeued job starts again from the run's checkpoint when one exists;
- time limit with submitit's warning signal: :meth:`SlurmRun.checkpoint` stops the
  worker (which checkpoints) and submitit requeues the same callable;
- cancel (``scancel``) or the end of its time: ``failure.json`` says so.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import submitit

STOP_WAIT_S = 60
CHECKPOINT_EXIT = 3  # the worker stopped on a signal after writing its checkpoint


def slurm_job_id() -> str | None:
    """This job's id as submitit and squeue name it (``123_4`` for array element 4)."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _job_facts() -> dict[str, str]:
    """JobState, Restarts, RunTime, TimeLimit of this job from scontrol (empty if it does not answer)."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return {}
    try:
        text = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(re.findall(r"\b(JobState|Restarts|RunTime|TimeLimit)=(\S+)", text))


def _seconds(text: str) -> float | None:
    """Slurm's [D-]HH:MM:SS as seconds."""
    match = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", text or "")
    if not match:
        return None
    d, h, m, s = (int(g or 0) for g in match.groups())
    return ((d * 24 + h) * 60 + m) * 60 + s


class SlurmRun(submitit.helpers.Checkpointable):
    """One matrix run inside a Slurm job."""

    def __init__(self, out: str, run_id: str, config: dict, threads: int | None = None, nproc: int = 1) -> None:
        self.out, self.run_id, self.config, self.threads, self.nproc = out, run_id, config, threads, nproc
        self.proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "proc"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, proc=None)

    def _paths(self) -> tuple[Path, Path]:
        from prunekit.matrix import store

        return Path(self.out) / store.RUNS / self.run_id, Path(self.out) / store.LOGS / f"{self.run_id}.log"

    def __call__(self) -> str:
        from prunekit.core.config import config_from_mapping
        from prunekit.matrix import store
        from prunekit.matrix.expand import PlannedRun
        from prunekit.matrix.run_results import record_failure
        from prunekit.matrix.worker import THREADS_ENV

        run_dir, log_path = self._paths()
        resume = (run_dir / "checkpoint.pt").exists()  # the checkpoint issue names the file; see worker
        if not resume:
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
        threads = str(self.threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "1")))
        env = os.environ | {THREADS_ENV: threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
        config = self.config | {"out": str(run_dir), "quiet": True}
        args = [sys.executable, "-m", "prunekit.matrix.worker", str(os.getpid()), json.dumps(config)]
        if self.nproc > 1:  # one run on every GPU of the job: DDP, each rank following the torchrun agent
            args = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc-per-node={self.nproc}",
                "-m",
                "prunekit.matrix.worker",
                "0",
                json.dumps(config),
            ]
        if resume:
            args.append("--resume")
        started = time.monotonic()
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(
                f"prunekit: Slurm job {slurm_job_id()} (restart {os.environ.get('SLURM_RESTART_COUNT', '0')}) "
                f"on {os.uname().nodename}{', resuming' if resume else ''}\n"
            )
            log.flush()
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
            returncode = self.proc.wait()
        wall = time.monotonic() - started
        if returncode == 0 and (run_dir / store.SUMMARY).exists():
            return "finished"
        run = PlannedRun(self.run_id, config_from_mapping(self.config))
        if returncode in (CHECKPOINT_EXIT, -signal.SIGTERM, -signal.SIGKILL):
            facts = _job_facts()
            if int(facts.get("Restarts", "0")) > int(os.environ.get("SLURM_RESTART_COUNT", "0")):
                return "requeued"  # Slurm restarts this job; the new one resumes from the checkpoint
            run_time, limit = _seconds(facts.get("RunTime", "")), _seconds(facts.get("TimeLimit", ""))
            why = (
                "reached its time limit"
                if run_time is not None and limit and run_time >= limit - 1
                else "was cancelled (scancel or preemption)"
            )
            reason = f"Slurm job {slurm_job_id()} {why}; the run stopped after its last checkpoint"
            record_failure(self.out, run, returncode, log_path, wall, reason, slurm_job_id=slurm_job_id())
            return "failed"
        record_failure(self.out, run, returncode, log_path, wall, slurm_job_id=slurm_job_id())
        return "failed"

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """On submitit's time-out/preemption signal: let the worker checkpoint and stop, then requeue."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            try:
                self.proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return submitit.helpers.DelayedSubmission(SlurmRun(self.out, self.run_id, self.config, self.threads, self.nproc))
