"""What one Slurm job of a matrix runs: the same worker child as a local run.

:class:`SlurmRun` is pickled by submitit at submission and called inside the job. It
starts ``python -m prunekit.matrix.worker`` (under torchrun with ``--gpus-per-run`` > 1)
as its child (crash isolation, the same ``failure.json``), appending to
``DIR/logs/<id>.log``, and passes it ``--resume`` when the run directory holds an
unfinished run's checkpoint. When Slurm stops the job:

- requeue (``scontrol requeue``, or preemption with requeue): Slurm's SIGTERM makes the
  worker checkpoint and stop; the job ends without a record and the requeued job resumes;
- submitit's preemption/time-out signal (USR2, ``--signal`` before the time limit):
  :meth:`SlurmRun.checkpoint` stops the worker (which checkpoints) and returns the same
  callable, which submitit saves and requeues; the requeued job resumes;
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
from typing import Any

import submitit

from prunekit.core.rundir import layout as rundir
from prunekit.core.train.preemption import EXIT_INTERRUPTED
from prunekit.matrix import store
from prunekit.matrix.worker import CONFIG_ENV, THREADS_ENV
from prunekit.matrix.worker import command as worker_command

STOP_WAIT_S = 60


def _preempt_signal() -> int:
    """The signal submitit handles as preemption or time-out (its ``SUBMITIT_PREEMPT_SIGNAL``, USR2 by default)."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return int(getattr(signal, f"SIG{name}", signal.SIGUSR2))


def _ignore_preempt_signal() -> None:
    """In the worker (and torchrun's ranks): Slurm signals every process of the job step, but
    only submitit's handler in the job answers the preemption signal, by stopping the worker."""
    signal.signal(_preempt_signal(), signal.SIG_IGN)


def _exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether ``proc`` ends within ``timeout`` s, without reaping it (safe in a signal handler
    that interrupted ``proc.wait()``, which holds Popen's wait lock)."""
    deadline = time.monotonic() + timeout
    while proc.returncode is None:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # already reaped
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def slurm_job_id() -> str | None:
    """This job's id as submitit and squeue name it (``123_4`` for array element 4)."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _job_facts() -> dict[str, str]:
    """JobState, Restarts, RunTime, TimeLimit of this job from scontrol (empty if it does not answer)."""
    job = slurm_job_id()  # 123_4, not the raw id: for an array's first element, that names the whole array
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


def _said_stopped(log_path: Path, offset: int) -> bool:
    """Whether the worker logged a stop after a checkpoint (torchrun reports its ranks' exit 3 as 1)."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            log.seek(offset)
            return any(line.startswith("Run stopped by") for line in log)
    except OSError:
        return False


class SlurmRun(submitit.helpers.Checkpointable):
    """One matrix run inside a Slurm job."""

    def __init__(self, out: str, run_id: str, config: dict[str, Any], threads: int | None = None, nproc: int = 1) -> None:
        self.out, self.run_id, self.config, self.threads, self.nproc = out, run_id, config, threads, nproc
        self.proc: subprocess.Popen[bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "proc"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, proc=None)

    def _paths(self) -> tuple[Path, Path]:
        return Path(self.out) / store.RUNS / self.run_id, Path(self.out) / store.LOGS / f"{self.run_id}.log"

    def _command(self, resume: bool) -> list[str]:
        """The worker's command line (its settings go in the environment)."""
        if self.nproc > 1:  # one run on every GPU of the job: DDP, each rank following the torchrun agent
            launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={self.nproc}"]
            return [sys.executable, *launcher, *worker_command(0, resume)]
        return [sys.executable, *worker_command(os.getpid(), resume)]

    def __call__(self) -> str:
        from prunekit.core.config.settings import config_from_mapping
        from prunekit.matrix.expand import PlannedRun
        from prunekit.matrix.run_results import record_failure

        run_dir, log_path = self._paths()
        if rundir.state(run_dir) == rundir.FINISHED:  # requeued after the run had finished
            return "finished"
        resume = store.resumable(Path(self.out), self.run_id)
        if resume:
            store.forget_failure(Path(self.out), self.run_id)
        else:
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
        threads = str(self.threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "1")))
        config = self.config | {"out": str(run_dir), "quiet": True}
        env = os.environ | {THREADS_ENV: threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
        env[CONFIG_ENV] = json.dumps(config)
        restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
        started = time.monotonic()
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(
                f"prunekit: Slurm job {slurm_job_id()} (restart {restarts}) "
                f"on {os.uname().nodename}{', resuming' if resume else ''}\n"
            )
            log.flush()
            offset = log.tell()
            self.proc = subprocess.Popen(
                self._command(resume),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_ignore_preempt_signal,
            )
            returncode = self.proc.wait()
        wall = time.monotonic() - started
        if returncode == 0 and (run_dir / rundir.SUMMARY).exists():
            return "finished"
        facts = _job_facts()
        if int(facts.get("Restarts", "0")) > restarts:
            return "requeued"  # Slurm restarts this job; the new one resumes from the checkpoint
        run = PlannedRun(self.run_id, config_from_mapping(self.config))
        if returncode in (EXIT_INTERRUPTED, -signal.SIGTERM, -signal.SIGKILL) or _said_stopped(log_path, offset):
            run_time, limit = _seconds(facts.get("RunTime", "")), _seconds(facts.get("TimeLimit", ""))
            why = (
                "reached its time limit"
                if run_time is not None and limit and run_time >= limit - 1
                else "was cancelled (scancel or preemption)"
            )
            reason = f"Slurm job {slurm_job_id()} {why}; the run stopped after its last checkpoint"
            record_failure(Path(self.out), run, returncode, log_path, wall, reason, slurm_job_id=slurm_job_id())
            return "failed"
        record_failure(Path(self.out), run, returncode, log_path, wall, slurm_job_id=slurm_job_id())
        return "failed"

    def checkpoint(self, *args: object, **kwargs: object) -> submitit.helpers.DelayedSubmission:
        """On submitit's preemption/time-out signal: stop the worker, which checkpoints, then
        hand submitit this run again to requeue (the requeued job resumes from the checkpoint).

        SIGTERM, as Slurm sends it; under torchrun the agent passes it to every rank and
        the ranks agree to stop at the same step.
        """
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if not _exited(self.proc, STOP_WAIT_S):
                self.proc.kill()
        return submitit.helpers.DelayedSubmission(SlurmRun(self.out, self.run_id, self.config, self.threads, self.nproc))
