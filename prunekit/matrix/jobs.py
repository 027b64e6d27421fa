"""Runs handed to a scheduler (Slurm): their states, waiting for them, ``--status``.

A run's state comes from its run directory first (``summary.json``: done,
``failure.json``: failed with its reason), then from the scheduler for the job
``matrix.json`` records (pending or running while Slurm lists it). A job Slurm no
longer lists that left neither file ended without a result: waiting records that as
the run's failure, with the state Slurm gives for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prunekit.core.rundir import layout as rundir
from prunekit.matrix import slurm, store
from prunekit.matrix.expand import Plan, PlannedRun
from prunekit.matrix.progress import Active, MatrixProgress
from prunekit.matrix.run_results import finished_detail, read_progress, record_failure
from prunekit.matrix.scheduler import Outcome

POLL_S = 1.0
PENDING, RUNNING, DONE, FAILED, INTERRUPTED, NEW = "pending", "running", "done", "failed", "interrupted", "new"


@dataclass
class RunStatus:
    run_id: str
    state: str
    detail: str = ""
    job_id: str | None = None


def live_runs(out: Path, plan: Plan) -> dict[str, tuple[str, str, str]]:
    """Runs whose recorded Slurm job is still queued or running: run id -> (job id, state, reason)."""
    jobs = {run_id: j for run_id, j in store.recorded_jobs(out).items() if j.get("executor") == "slurm"}
    ids = {r.id for r in plan.runs}
    if not jobs or not ids & set(jobs):
        return {}
    listed = slurm.queue()
    return {
        run_id: (j["job_id"], *listed[j["job_id"]])
        for run_id, j in jobs.items()
        if run_id in ids and j["job_id"] in listed and listed[j["job_id"]][0] in slurm.LIVE
    }


def _failure_reason(out: Path, run_id: str) -> str:
    try:
        return str(rundir.read_failure(Path(out) / store.RUNS / run_id)["reason"])
    except (rundir.Malformed, KeyError, TypeError):
        return "see its failure.json"


def statuses(out: Path, plan: Plan) -> list[RunStatus]:
    """Every run's state from its directory and the scheduler."""
    recorded = store.recorded_jobs(out)
    live = live_runs(out, plan)
    result = []
    for run in plan.runs:
        job_id = recorded.get(run.id, {}).get("job_id")
        state = store.run_state(out, run.id)
        if state == store.FINISHED:
            result.append(RunStatus(run.id, DONE, finished_detail(out, run.id, _wall(out, run.id)), job_id))
        elif state == store.FAILED:
            result.append(RunStatus(run.id, FAILED, _failure_reason(out, run.id), job_id))
        elif run.id in live:
            job_id, job_state, reason = live[run.id]
            epochs, acc = read_progress(Path(out) / store.RUNS / run.id)
            if job_state == "PENDING":
                detail = f"Slurm job {job_id} pending ({reason})" + (f", resumes after epoch {epochs}" if epochs else "")
                result.append(RunStatus(run.id, PENDING, detail, job_id))
            else:
                accuracy = f", test acc {acc:.2f}%" if acc is not None else ""
                detail = f"Slurm job {job_id} {job_state.lower()}, epoch {epochs}/{run.config.epochs}{accuracy}"
                result.append(RunStatus(run.id, RUNNING, detail, job_id))
        elif job_id is not None and state == store.INTERRUPTED:
            ended = slurm.ended_state(job_id)
            result.append(RunStatus(run.id, FAILED, _ended_reason(job_id, ended), job_id))
        else:
            result.append(RunStatus(run.id, INTERRUPTED if state in (store.INTERRUPTED, store.MALFORMED) else NEW, "", job_id))
    return result


def _wall(out: Path, run_id: str) -> float:
    try:
        return float(rundir.read_summary(Path(out) / store.RUNS / run_id)["wall_time_s"])
    except rundir.Malformed:
        return 0.0


def _ended_reason(job_id: str, state: str | None) -> str:
    known = f"ended {state}" if state else "ended (Slurm no longer knows how)"
    return f"Slurm job {job_id} {known} without a result (no summary.json or failure.json)"


class SlurmWaiter:
    """Follows submitted runs to their end with the matrix progress display."""

    def __init__(self, out: Path, plan: Plan, progress: MatrixProgress) -> None:
        self.out, self.plan, self.progress = Path(out), plan, progress
        self.outcome = Outcome()

    def wait(self, submitted: dict[str, str]) -> Outcome:
        runs = {r.id: r for r in self.plan.runs if r.id in submitted}
        active: dict[str, Active] = {}
        started = time.monotonic()
        while runs:
            listed = slurm.queue()
            for run_id, run in list(runs.items()):
                job_id = submitted[run_id]
                state = listed.get(job_id, ("", ""))[0]
                run_dir = self.out / store.RUNS / run_id
                if state == "RUNNING" and run_id not in active:
                    active[run_id] = Active(run_id, run.config.epochs)
                    self.progress.started(active[run_id])
                if run_id in active:
                    active[run_id].epoch, active[run_id].accuracy = read_progress(run_dir)
                    self.progress.update(active[run_id])
                if state in slurm.LIVE:
                    continue
                ended = active.pop(run_id, None)
                self._ended(run, job_id, ended or Active(run_id, run.config.epochs), started)
                del runs[run_id]
            if runs:
                time.sleep(POLL_S)
        return self.outcome

    def _ended(self, run: PlannedRun, job_id: str, active: Active, started: float) -> None:
        wall = time.monotonic() - started
        if active.run_id not in self.progress.epochs_seen:
            self.progress.started(active)
        state = store.run_state(self.out, run.id)
        if state == store.FINISHED:
            self.outcome.finished.append(run.id)
            self.progress.finished(active, True, finished_detail(self.out, run.id, _wall(self.out, run.id)))
            return
        if state == store.FAILED:
            reason = _failure_reason(self.out, run.id)
        else:
            reason = _ended_reason(job_id, slurm.ended_state(job_id))
            log = self.out / store.LOGS / f"{run.id}.log"
            record_failure(self.out, run, None, log, wall, reason, slurm_job_id=job_id)
        self.outcome.failed[run.id] = reason
        self.progress.finished(active, False, reason)


def submit_and_wait(
    out: Path,
    plan: Plan,
    runs: list[PlannedRun],
    live: dict[str, tuple[str, str, str]],
    settings: slurm.SlurmSettings,
    progress: MatrixProgress,
    detach: bool,
    echo: Callable[[str], None],
) -> Outcome | None:
    """Submit ``runs`` as Slurm jobs, record them in matrix.json, then wait for them and the ``live`` ones."""
    submitted = slurm.submit(out, runs, settings, plan.spec.name)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    store.record_jobs(
        out, {run_id: {"executor": "slurm", "job_id": job_id, "submitted_at": now} for run_id, job_id in submitted.items()}
    )
    if submitted:
        ids = sorted(submitted.values())
        echo(f"  submitted {len(submitted)} Slurm job(s): {ids[0]}" + (f" .. {ids[-1]}" if len(ids) > 1 else ""))
    if live:
        echo(f"  {len(live)} run(s) already queued or running in Slurm, not resubmitted")
    if detach:
        return None
    with progress:
        return SlurmWaiter(out, plan, progress).wait(submitted | {run_id: v[0] for run_id, v in live.items()})


def print_status(out: Path, plan: Plan, echo: Callable[[str], None]) -> None:
    """One line per run: pending, running, done, failed (with the reason), interrupted or new."""
    found = statuses(out, plan)
    counts = {state: sum(s.state == state for s in found) for state in (PENDING, RUNNING, DONE, FAILED, INTERRUPTED, NEW)}
    echo(f"Matrix '{plan.spec.name}' in {out}: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n))
    width = max(len(s) for s in counts)
    for s in found:
        echo(f"  {s.state:<{width}} {s.run_id}" + (f": {s.detail}" if s.detail else ""))
