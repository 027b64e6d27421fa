"""Resume after `kill -9`: of the matrix process, or of one run's child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

BOOT = textwrap.dedent("""
    import sys
    from prunekit import cli
    from prunekit.matrix.cli import matrix
    if "matrix" not in cli.cli.commands:
        cli.cli.add_command(matrix)
    cli.main(sys.argv[1:])
""")

# Magnitude pruning that sleeps each step, so a test can reliably catch a run mid-way.
SLOW = """
import time

from prunekit import hookimpl
from prunekit.core.sparsity.pruner import MaskPruner


class Slow(MaskPruner):
    def score(self, index, target):
        return target.parameter.detach().abs()

    def before_step(self, step):
        time.sleep(0.05)


@hookimpl
def register_pruners(register):
    register("toy-slow", lambda targets: Slow(targets), description="magnitude, 50 ms per step")
"""

SPEC = """
name: resume
datasets: [{name: synthetic, options: {train_size: 64, test_size: 32, channels: 1}}]
optimizers: [adamw]
pruners: [toy-slow]
sparsities: %s
settings: {epochs: 4, batch_size: 16, sample_interval: 0.1}
"""
EPOCHS = [1, 2, 3, 4]


def setup(tmp_path, sparsities):
    site = tmp_path / "site"
    site.mkdir()
    (site / "prunekit_slow.py").write_text(SLOW)
    info = site / "prunekit_slow-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: prunekit-slow\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[prunekit]\nslow = prunekit_slow\n")
    spec = tmp_path / "resume.yaml"
    spec.write_text(SPEC % sparsities)
    return spec, dict(os.environ, PYTHONPATH=str(site))


def start(spec, out, env, log):
    handle = open(log, "w")
    return subprocess.Popen(
        [sys.executable, "-c", BOOT, "matrix", str(spec), "--out", str(out), "--jobs", "1", "--threads", "1"],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
    )


def finish(spec, out, env):
    return subprocess.run(
        [sys.executable, "-c", BOOT, "matrix", str(spec), "--out", str(out), "--jobs", "1", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def wait_for(condition, proc, timeout=180):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the matrix ended before the test could interrupt it"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def epochs_written(path):
    try:
        return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def run_ids(out):
    return [r["id"] for r in json.loads((out / "matrix.json").read_text())["runs"]]


def stamp(path):
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, path.read_bytes()


def the_worker(proc):
    [child] = psutil.Process(proc.pid).children()
    assert "prunekit.matrix.worker" in " ".join(child.cmdline())
    return child


def test_kill_9_of_the_matrix_keeps_finished_runs_and_redoes_the_interrupted_one(tmp_path):
    spec, env = setup(tmp_path, "[0.5, 0.9]")
    out = tmp_path / "m"
    proc = start(spec, out, env, tmp_path / "first.log")
    wait_for(lambda: (out / "matrix.json").exists(), proc)
    first, second = run_ids(out)
    runs = out / "runs"
    wait_for(lambda: (runs / first / "summary.json").exists() and epochs_written(runs / second / "metrics.jsonl"), proc)
    worker = the_worker(proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs([worker], timeout=10)
    assert not alive, "the run's child process outlived the killed matrix"
    assert not (runs / second / "summary.json").exists() and not (runs / second / "failure.json").exists()
    kept = stamp(runs / first / "summary.json")

    result = finish(spec, out, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 finished, 0 failed before, 1 interrupted, 0 new; 1 to run now." in result.stdout
    assert stamp(runs / first / "summary.json") == kept
    assert sorted(os.listdir(runs)) == sorted([first, second])
    for run_id in (first, second):
        assert epochs_written(runs / run_id / "metrics.jsonl") == EPOCHS  # the redone run starts afresh
        assert not (runs / run_id / "failure.json").exists()
    summaries = {i: stamp(runs / i / "summary.json") for i in (first, second)}

    again = finish(spec, out, env)
    assert again.returncode == 0 and "2 finished" in again.stdout and "0 to run now" in again.stdout
    assert {i: stamp(runs / i / "summary.json") for i in (first, second)} == summaries


def test_a_killed_child_is_a_recorded_failure_the_matrix_goes_on_and_a_rerun_redoes_it(tmp_path):
    spec, env = setup(tmp_path, "[0.5, 0.9]")
    out = tmp_path / "m"
    proc = start(spec, out, env, tmp_path / "first.log")
    wait_for(lambda: (out / "matrix.json").exists(), proc)
    first, second = run_ids(out)
    runs = out / "runs"
    wait_for(lambda: epochs_written(runs / first / "metrics.jsonl"), proc)
    the_worker(proc).kill()
    assert proc.wait(timeout=300) == 1
    failure = json.loads((runs / first / "failure.json").read_text())
    assert failure["reason"].startswith("killed by SIGKILL") and failure["epochs_completed"] >= 1
    assert not (runs / first / "summary.json").exists()
    assert epochs_written(runs / second / "metrics.jsonl") == EPOCHS
    kept = stamp(runs / second / "summary.json")

    result = finish(spec, out, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 finished, 1 failed before, 0 interrupted, 0 new; 1 to run now." in result.stdout
    assert not (runs / first / "failure.json").exists()
    assert epochs_written(runs / first / "metrics.jsonl") == EPOCHS
    assert stamp(runs / second / "summary.json") == kept


def test_kill_9_of_the_matrix_redoes_no_checkpointed_epoch(tmp_path):
    from prunekit.core.rundir import checkpoint

    spec, env = setup(tmp_path, "[0.5]")
    out = tmp_path / "m"
    proc = start(spec, out, env, tmp_path / "first.log")
    wait_for(lambda: (out / "matrix.json").exists(), proc)
    [run_id] = run_ids(out)
    run_dir = out / "runs" / run_id
    wait_for(lambda: (run_dir / "checkpoint.pt").exists() and len(epochs_written(run_dir / "metrics.jsonl")) >= 2, proc)
    worker = the_worker(proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs([worker], timeout=10)
    assert not alive
    saved = checkpoint.load(run_dir / "checkpoint.pt").epoch  # what the killed run had checkpointed
    assert 1 <= saved < 4

    result = finish(spec, out, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 to run now. 1 of them continue from a checkpoint." in result.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_at_epochs"] == [saved]
    assert epochs_written(run_dir / "metrics.jsonl") == EPOCHS  # no epoch twice
    log = (out / "logs" / f"{run_id}.log").read_text()
    after = log.split(f"resuming from the checkpoint after epoch {saved}")[1]
    trained_again = [int(line.split()[1].rstrip(":")) for line in after.splitlines() if line.startswith("epoch ")]
    assert trained_again == EPOCHS[saved:]  # only the epochs after the checkpoint were trained again
