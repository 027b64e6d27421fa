"""`prunekit matrix --executor slurm` against a real single-node Slurm cluster on localhost.

The cluster is started by .ci/slurm-up.sh (Debian's slurm-wlm and munge, as root) and
stopped by .ci/slurm-down.sh; an already running cluster named by $SLURM_CONF is used
as it is. Without Slurm or root the cluster tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prunekit.core.rundir import layout as rundir
from prunekit.matrix import store

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
name: slurm-digits
models: [lenet5]
datasets: [digits]
optimizers: [adamw]
pruners: {pruners}
sparsities: [0.5]
settings: {{epochs: {epochs}, batch_size: {batch_size}, device: cpu, sample_interval: 0.5}}
"""
CLI = "import sys; from prunekit.cli import main; main(sys.argv[1:])"


def _cluster_answers() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """SLURM_CONF of a running cluster: the one already configured, else one started here."""
    if os.environ.get("SLURM_CONF") and _cluster_answers():
        yield os.environ["SLURM_CONF"]
        return
    missing = [c for c in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(c) is None]
    if missing:
        pytest.skip(f"Slurm not installed ({', '.join(missing)} missing; apt-get install slurm-wlm munge, as .ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("starting a local Slurm cluster needs root")
    state = tmp_path_factory.mktemp("slurm")
    up = subprocess.run([str(ROOT / ".ci/slurm-up.sh"), str(state)], capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SLURM_CONF", str(state / "slurm.conf"))
            yield str(state / "slurm.conf")
    finally:
        subprocess.run([str(ROOT / ".ci/slurm-down.sh"), str(state)], timeout=60)


def _spec(tmp_path: Path, pruners: str = "[none, magnitude]", epochs: int = 2, batch_size: int = 64) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(pruners=pruners, epochs=epochs, batch_size=batch_size), encoding="utf-8")
    return path


def _jobs(out: Path) -> dict[str, str]:
    return {run_id: j["job_id"] for run_id, j in store.recorded_jobs(out).items()}


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _epochs(out: Path, run_id: str) -> int:
    try:
        return len((out / store.RUNS / run_id / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def _job(job_id: str) -> dict[str, str]:
    """JobState, Restarts, ... of a job as ``scontrol show job`` gives them."""
    text = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    return dict(re.findall(r"\b(\w+)=(\S+)", text))


def _requeued(job_id: str) -> bool:
    """Whether the job waits, requeued, to start again. Slurm holds it back for about two minutes
    (BeginTime); it is made eligible in 3 s instead: started within the second its last instance
    was killed in, slurmd refuses it ("Job credential revoked") and it fails."""
    job = _job(job_id)
    if job.get("Restarts") != "1" or job.get("JobState") != "PENDING":
        return False
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now+3"], check=True)
    return True


def test_slurm_executor_without_slurm_is_one_line_exit_2(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "m"
    result = run_cli("matrix", _spec(tmp_path), "--out", out, "--executor", "slurm")
    assert result.code == 2 and "needs Slurm's sbatch" in result.err and len(result.err.strip().splitlines()) == 1
    assert not out.exists()
    result = run_cli("matrix", _spec(tmp_path), "--out", out, "--detach")
    assert result.code == 2 and "--detach needs --executor slurm" in result.err


def test_bad_cluster_requests_are_refused_before_submitting(slurm_cluster, run_cli, tmp_path):
    spec, out = _spec(tmp_path), tmp_path / "m"
    cases = [
        (("--slurm-partition", "nosuch"), "Unknown --slurm-partition 'nosuch'; partitions here: debug"),
        (("--gpus-per-run", "1"), "--gpus-per-run 1 but partition 'debug' has no GPUs"),
        (("--mem-per-run", "lots"), "--mem-per-run must be a size"),
        (("--slurm-time", "0"), "--slurm-time must be at least 1 minute"),
    ]
    for args, message in cases:
        result = run_cli("matrix", spec, "--out", out, "--executor", "slurm", *args)
        assert result.code == 2 and message in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1 and not out.exists()


def test_grid_detach_status_no_resubmission_then_wait(slurm_cluster, run_cli, tmp_path):
    spec, out = _spec(tmp_path), tmp_path / "m"
    result = run_cli("matrix", spec, "--out", out, "--executor", "slurm", "--mem-per-run", "1G", "--detach")
    assert result.code == 0 and "submitted 2 Slurm job(s)" in result.out and "Detached" in result.out, result.err
    jobs = _jobs(out)
    assert len(jobs) == 2 and len({j.split("_")[0] for j in jobs.values()}) == 1  # one job array, one element per run

    status = run_cli("matrix", spec, "--out", out, "--status")
    assert status.code == 0
    for run_id in jobs:
        line = next(line for line in status.out.splitlines() if run_id in line)
        assert line.split()[0] in ("pending", "running", "done"), status.out

    again = run_cli("matrix", spec, "--out", out, "--executor", "slurm", "--detach")  # nothing resubmitted
    assert again.code == 0 and "Slurm job(s):" not in again.out and _jobs(out) == jobs, again.out

    waited = run_cli("matrix", spec, "--out", out, "--executor", "slurm")  # waits for the queued runs
    assert waited.code == 0, waited.err
    assert "2 of 2 runs finished" in waited.out and "Slurm job(s):" not in waited.out
    for run_id, job_id in jobs.items():
        summary = json.loads((out / store.RUNS / run_id / store.SUMMARY).read_text())
        assert summary["status"] == "completed" and summary["epochs"] == 2 and summary["steps"] > 0
        assert summary["environment"]["slurm"]["job_id"] == job_id
        assert summary["environment"]["slurm"]["restart_count"] == 0
        assert summary["target_reached"] and 80 < summary["final_test_accuracy"] <= 100
        assert summary["achieved_sparsity"] == pytest.approx(summary["target_sparsity"], abs=0.005)
        assert f"Slurm job {job_id}" in (out / store.LOGS / f"{run_id}.log").read_text()
    done = run_cli("matrix", spec, "--out", out, "--status")
    assert done.out.count("  done ") == 2 and "2 done" in done.out


def test_scancel_is_recorded_as_failed_with_the_reason(slurm_cluster, tmp_path):
    spec, out = _spec(tmp_path, "[magnitude]", epochs=200), tmp_path / "m"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "matrix", str(spec), "--out", str(out), "--executor", "slurm"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: out.exists() and _jobs(out), 60, "the submission")
        ((run_id, job_id),) = _jobs(out).items()
        _wait_for(lambda: _epochs(out, run_id) >= 1, 120, "the first epoch")
        subprocess.run(["scancel", job_id], check=True)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr
    failure = json.loads((out / store.RUNS / run_id / store.FAILURE).read_text())
    assert f"Slurm job {job_id} was cancelled" in failure["reason"] and failure["slurm_job_id"] == job_id
    assert failure["epochs_completed"] >= 1
    assert f"failed {run_id}: Slurm job {job_id} was cancelled" in stdout
    assert "sacct" not in stdout + stderr


def test_requeued_jobs_resume_from_their_checkpoints(slurm_cluster, run_cli, tmp_path):
    """Two runs stopped mid-run: one by `scontrol requeue` (Slurm's SIGTERM reaches the worker),
    one by submitit's preemption signal (USR2: SlurmRun.checkpoint stops the worker, submitit
    requeues the job). Each checkpoints, and its requeued job resumes from the checkpoint."""
    spec, out = _spec(tmp_path, epochs=8, batch_size=16), tmp_path / "m"
    result = run_cli("matrix", spec, "--out", out, "--executor", "slurm", "--mem-per-run", "1G", "--detach")
    assert result.code == 0, result.err
    jobs = _jobs(out)
    (by_scontrol, scontrol_job), (by_submitit, submitit_job) = sorted(jobs.items())
    stop = {scontrol_job: ["scontrol", "requeue", scontrol_job], submitit_job: ["scancel", "--signal=USR2", submitit_job]}

    def stop_after_a_checkpoint() -> bool:  # each job as soon as its run has a checkpoint after epoch 1
        for run_id, job_id in jobs.items():
            if job_id in stop and _epochs(out, run_id) >= 1 and (out / store.RUNS / run_id / rundir.CHECKPOINT).exists():
                subprocess.run(stop.pop(job_id), check=True)
        return not stop

    _wait_for(stop_after_a_checkpoint, 180, "the first checkpoints")
    for run_id, job_id in jobs.items():
        _wait_for(lambda j=job_id: _requeued(j), 60, f"{job_id} to be requeued")
        assert (out / store.RUNS / run_id / store.SUMMARY).exists() is False
    for run_id in jobs:
        _wait_for(lambda r=run_id: (out / store.RUNS / r / store.SUMMARY).exists(), 180, f"{run_id} to finish")

    for run_id, job_id in jobs.items():
        run_dir = out / store.RUNS / run_id
        summary = json.loads((run_dir / store.SUMMARY).read_text())
        assert summary["status"] == "completed" and summary["epochs"] == 8
        assert summary["environment"]["slurm"] == summary["environment"]["slurm"] | {"job_id": job_id, "restart_count": 1}
        (stopped_after,) = summary["resumed_at_epochs"]  # resumed once, from a checkpoint after that many epochs
        assert 1 <= stopped_after < 8
        assert [r["epoch"] for r in rundir.read_metrics(run_dir)] == list(range(1, 9))  # each epoch once
        log = (out / store.LOGS / f"{run_id}.log").read_text()
        assert f"Slurm job {job_id} (restart 0)" in log and f"Slurm job {job_id} (restart 1) on" in log, log
        assert "Run stopped by SIGTERM" in log and f"resuming from the checkpoint after epoch {stopped_after}" in log, log
    submitit_log = (out / store.SLURM / f"{submitit_job}_0_log.out").read_text()
    assert "Calling checkpoint method" in submitit_log, submitit_log[-3000:]

    again = run_cli("matrix", spec, "--out", out, "--executor", "slurm", "--detach")  # nothing resubmitted
    assert again.code == 0 and "Slurm job(s):" not in again.out and _jobs(out) == jobs, again.out
    done = run_cli("matrix", spec, "--out", out, "--status")
    assert "2 done" in done.out, done.out
