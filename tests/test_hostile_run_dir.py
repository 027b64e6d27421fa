"""Hostile run directories and checkpoints (issue 19, items 1-4): the real CLI refuses them with one
line and exit status 2, touching nothing inside the run directory or outside it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import zipfile
from pathlib import Path

import pytest
import torch

import prunekit
from prunekit.core.run.runner import resume
from prunekit.core.rundir import checkpoint
from prunekit.testing.runs import short_run

TINY = ("--dataset", "synthetic", "--dataset-opt", "train_size=64", "--dataset-opt", "test_size=32", "--batch-size", "32")
FAST = (*TINY, "--epochs", "2", "--sample-interval", "0.05", "--quiet")


def stop_after(epoch: int):
    """An epoch callback that stops the run like Ctrl-C once ``epoch`` and its checkpoint are done."""

    def on_epoch(record: dict) -> None:
        if record["epoch"] == epoch:
            raise KeyboardInterrupt

    return on_epoch


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict[str, Path]:
    """Two finished 2-epoch runs (seed 0 at 70%, seed 1 at 50%), checkpointed after each epoch."""
    from prunekit.cli import main

    runs = {}
    for name, options in {"seed0": ("--seed", "0"), "seed1": ("--seed", "1", "--sparsity", "0.5")}.items():
        out = tmp_path_factory.mktemp("hostile") / name
        with pytest.raises(SystemExit) as info:
            main(["run", *FAST, *options, "--out", str(out)])
        assert info.value.code == 0
        runs[name] = out
    return runs


def stopped_copy(run_dir: Path, tmp_path: Path, name: str = "copy") -> Path:
    """A copy of a finished run without its results: a run stopped after its last checkpoint."""
    copy = tmp_path / name
    shutil.copytree(run_dir, copy)
    (copy / "summary.json").unlink()
    (copy / "test_correct.bin").unlink()
    return copy


def refused(result, *expected: str) -> None:
    assert result.code == 2, result.err
    assert result.err.startswith("Error: ") and result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
    for text in expected:
        assert text in result.err, result.err


# ---------------------------------------------------------------- item 1: crafted checkpoints


@pytest.mark.parametrize("target", ["absolute", "dotdot"])
def test_files_map_cannot_cut_a_file_outside_the_run_dir(finished, tmp_path, run_cli, target):
    run_dir = stopped_copy(finished["seed0"], tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious data\n" * 100)
    saved = checkpoint.load(run_dir / "checkpoint.pt")
    saved.files = {str(victim) if target == "absolute" else "../victim.txt": 0}
    checkpoint.save(run_dir / "checkpoint.pt", saved)
    before = snapshot(run_dir)
    refused(run_cli("run", "--resume", run_dir), "files", "metrics.jsonl or timeline.jsonl")
    assert victim.read_bytes() == b"precious data\n" * 100
    assert snapshot(run_dir) == before


CRAFTED = {
    "negative epoch": (lambda c: setattr(c, "epoch", -3), "its epoch is -3, where prunekit writes a whole number >= 0"),
    "epoch as text": (lambda c: setattr(c, "epoch", "2"), "its epoch is '2'"),
    "step as float": (lambda c: setattr(c, "step", 2.5), "its step is 2.5"),
    "negative file length": (lambda c: c.files.update({"metrics.jsonl": -1}), "its files is"),
    "history not a list": (lambda c: setattr(c, "history", "x"), "its history is 'x'"),
    "model state not tensors": (lambda c: c.model.update({"conv1.weight": "x"}), "model state holds values that are not"),
    "python rng": (lambda c: c.rng.update({"python": [3, "x", None]}), "rng.python is not"),
    "loop state": (lambda c: c.loop.update({"step": "x"}), "loop state step is str"),
    "sampler aggregates": (lambda c: c.samplers["stats"].update({"process": {"peak": "x"}}), "sampler 'process'"),
    "more epochs than the run": (lambda c: setattr(c, "epoch", 99), "99 epoch(s)"),
    "batch past an epoch": (lambda c: setattr(c, "batch", 1000), "1000 batch(es)"),
    "history of other epochs": (lambda c: c.history.pop(), "epoch records [1] for 2 complete epoch(s)"),
    "wall time": (lambda c: c.loop.update({"wall_s": float("nan")}), "wall time is nan"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_fields_are_refused_before_anything_is_touched(finished, tmp_path, run_cli, case):
    """Wrong types and ranges: exit 2 and an untouched directory (no failure.json, no training of epochs -2..2)."""
    run_dir = stopped_copy(finished["seed0"], tmp_path)
    damage, expected = CRAFTED[case]
    saved = checkpoint.load(run_dir / "checkpoint.pt")
    damage(saved)
    checkpoint.save(run_dir / "checkpoint.pt", saved)  # a valid digest: the fields themselves are checked
    before = snapshot(run_dir)
    refused(run_cli("run", "--resume", run_dir), expected)
    assert snapshot(run_dir) == before


def test_flipped_bytes_in_a_tensor_are_detected(finished, tmp_path, run_cli):
    run_dir = stopped_copy(finished["seed0"], tmp_path)
    path = run_dir / "checkpoint.pt"
    with zipfile.ZipFile(path) as archive:  # torch stores tensor data uncompressed, one entry each
        entry = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        with open(path, "rb") as handle:
            handle.seek(entry.header_offset + 26)
            name_length, extra_length = int.from_bytes(handle.read(2), "little"), int.from_bytes(handle.read(2), "little")
    data = bytearray(path.read_bytes())
    data[entry.header_offset + 30 + name_length + extra_length + entry.file_size // 2] ^= 0x40
    path.write_bytes(bytes(data))
    before = snapshot(run_dir)
    refused(run_cli("run", "--resume", run_dir), "digest")
    assert snapshot(run_dir) == before


def test_linked_run_file_is_not_written_through(finished, tmp_path, run_cli):
    run_dir = stopped_copy(finished["seed0"], tmp_path)
    victim = tmp_path / "victim.jsonl"
    victim.write_bytes(b"x" * 10_000_000)
    (run_dir / "timeline.jsonl").unlink()
    (run_dir / "timeline.jsonl").symlink_to(victim)
    refused(run_cli("run", "--resume", run_dir), "timeline.jsonl is a link")
    assert victim.stat().st_size == 10_000_000


# ---------------------------------------------------------------- item 3: another run's checkpoint


def test_checkpoint_of_another_run_is_refused_before_anything_is_cut(finished, tmp_path, run_cli):
    run_dir = stopped_copy(finished["seed1"], tmp_path)
    shutil.copy(finished["seed0"] / "checkpoint.pt", run_dir / "checkpoint.pt")
    before = snapshot(run_dir)
    refused(run_cli("run", "--resume", run_dir), "seed 0, but this run has seed 1", "another run's")
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------- item 4: metrics.jsonl cut mid-line


def test_metrics_cut_mid_line_is_repaired_from_the_checkpoint(finished, tmp_path, run_cli):
    run_dir = stopped_copy(finished["seed0"], tmp_path)
    metrics = run_dir / "metrics.jsonl"
    whole = metrics.read_bytes()
    metrics.write_bytes(whole[: whole.index(b"\n") + 20])  # line 1 and the start of line 2, as a crash leaves it
    result = run_cli("run", "--resume", run_dir, "--quiet")
    assert result.code == 0, result.err
    assert metrics.read_bytes() == whole
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2]


def test_metrics_cut_mid_line_then_appended_to_stays_valid(tmp_path, run_cli):
    """A run stopped after epoch 1's checkpoint, its metrics cut mid-line: the resumed run's lines all parse."""
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after epoch 1 and its checkpoint
        short_run(run_dir, on_epoch=stop_after(1))
    metrics = run_dir / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes()[:-30])
    result = run_cli("run", "--resume", run_dir, "--quiet")
    assert result.code == 0, result.err
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2]


def test_timeline_cut_mid_line_is_cut_to_its_last_complete_line(finished, tmp_path, run_cli):
    run_dir = stopped_copy(finished["seed0"], tmp_path)
    timeline = run_dir / "timeline.jsonl"
    timeline.write_bytes(timeline.read_bytes()[:-7])
    assert run_cli("run", "--resume", run_dir, "--quiet").code == 0
    assert all(json.loads(line) for line in timeline.read_text().splitlines())


# ---------------------------------------------------------------- item 2: one process per run directory


def test_second_resume_of_a_running_run_is_refused(tmp_path, run_cli):
    """A run at work (here on a thread of this process) holds its directory: `--resume` of it is refused."""
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # a stopped run to resume
        short_run(run_dir, epochs=3, on_epoch=stop_after(1))
    resumed, release = threading.Event(), threading.Event()

    def hold(record: dict) -> None:
        resumed.set()
        release.wait(60)

    first = threading.Thread(target=resume, args=(run_dir,), kwargs={"on_epoch": hold}, daemon=True)
    first.start()
    try:
        assert resumed.wait(60)
        before = snapshot(run_dir) | {"timeline.jsonl": b""}  # the run at work samples on
        refused(run_cli("run", "--resume", run_dir), "in use by another prunekit process", f"pid {os.getpid()}")
        assert snapshot(run_dir) | {"timeline.jsonl": b""} == before
    finally:
        release.set()
        first.join(60)
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3] and (run_dir / "summary.json").exists()


def test_second_run_into_a_directory_another_has_just_locked_is_refused(tmp_path, run_cli, monkeypatch):
    """Two `run --out X` at once: both pass the emptiness check; the one that locks second is refused."""
    from prunekit.core.run import runner
    from prunekit.core.rundir.runlock import RunLock

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setattr(runner, "check_out_dir", lambda path: None)  # the other passed the check at the same time
    first = RunLock(run_dir)
    first.acquire()
    try:
        refused(run_cli("run", *FAST, "--out", run_dir), "in use by another prunekit process")
    finally:
        first.release()
    assert [p.name for p in run_dir.iterdir()] == ["run.lock"]
    assert run_cli("run", *FAST, "--out", tmp_path / "other").code == 0


def test_checkpoint_tensors_round_trip_through_the_digest(tmp_path):
    """bf16, bool and 0-d tensors hash; loading what was saved finds the same digest."""
    saved = checkpoint.Checkpoint(
        identity={"prunekit": prunekit.__version__},
        epoch=0,
        step=0,
        batch=0,
        model={"w": torch.ones(3, dtype=torch.bfloat16), "b": torch.tensor(2.0), "m": torch.zeros(2, dtype=torch.bool)},
        optimizer={"state": {0: {"step": torch.tensor(1.0)}}, "param_groups": [{"betas": (0.9, 0.99)}]},
        pruner={},
        scaler=None,
        rng=checkpoint.capture_rng({}),
    )
    checkpoint.save(tmp_path / "c.pt", saved)
    assert checkpoint.load(tmp_path / "c.pt").digest


# ---------------------------------------------------------------- item 5: credentials

SECRET_URI = "http://bob:S3CRET@at@127.0.0.1:9/mlflow"


def test_a_password_holding_an_at_sign_is_masked_whole():
    from prunekit.core.tracking.redact import Redactor

    assert Redactor().text(f"uri {SECRET_URI} and 'http://ann:pw@h'") == "uri http://***@127.0.0.1:9/mlflow and 'http://***@h'"


def test_error_messages_are_masked(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-S3CRET-123")
    result = run_cli("run", *FAST, "--model", "tok-S3CRET-123", "--out", tmp_path / "a")
    refused(result, "***")
    assert "S3CRET" not in result.err
    pytest.importorskip("prunekit_mlflow")
    result = run_cli(
        "run", *FAST, "--tracker", "mlflow", "--tracker-opt", f"mlflow.finish_timeout_s={SECRET_URI}", "--out", tmp_path / "b"
    )
    refused(result, "finish_timeout_s")
    assert "S3CRET" not in result.err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_matrix_keeps_credentials_out_of_matrix_json_and_worker_command_lines(tmp_path):
    """The tracking URI's password reaches the worker through its environment, never argv or a file."""
    pytest.importorskip("prunekit_mlflow")
    from prunekit.core.plugins.loading import get_plugins
    from prunekit.matrix import store
    from prunekit.matrix.expand import expand
    from prunekit.matrix.progress import MatrixProgress
    from prunekit.matrix.scheduler import Scheduler
    from prunekit.matrix.slots import make_slots
    from prunekit.matrix.spec import spec_from_text

    spec = spec_from_text(
        "datasets: [synthetic]\noptimizers: [adamw]\npruners: [magnitude]\nsparsities: [0.5]\n"
        f"settings: {{trackers: [mlflow], tracker_opts: {{mlflow: {{tracking_uri: '{SECRET_URI}'}}}}}}\n",
        "spec",
        "creds",
    )
    plan = expand(spec, get_plugins().registry)
    out = tmp_path / "m"
    out.mkdir()
    store.prepare(out, plan)
    fake = tmp_path / "python"  # stands in for the worker: records what it was given
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\necho "$PRUNEKIT_MATRIX_CONFIG" > {tmp_path}/env\n')
    fake.chmod(0o755)
    scheduler = Scheduler(
        out, plan, make_slots(1, [r.config for r in plan.runs]), MatrixProgress(1, quiet=True), python=str(fake)
    )
    scheduler.execute(plan.runs)
    assert "S3CRET" in (tmp_path / "env").read_text()  # the worker gets it
    assert "S3CRET" not in (tmp_path / "argv").read_text()
    written = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    assert any(p.name == "failure.json" for p in written) and any(p.name == "matrix.json" for p in written)
    assert not [p for p, text in written.items() if "S3CRET" in text]


# ---------------------------------------------------------------- item 6: SIGTERM to the matrix, out of memory


def test_sigterm_to_the_matrix_checkpoints_its_runs_and_exits_3(tmp_path):
    import psutil
    from test_matrix_resume import epochs_written, run_ids, setup, start, the_worker, wait_for

    spec, env = setup(tmp_path, "[0.5]")
    out = tmp_path / "m"
    proc = start(spec, out, env, tmp_path / "first.log")
    wait_for(lambda: (out / "matrix.json").exists(), proc)
    [run_id] = run_ids(out)
    run_dir = out / "runs" / run_id
    wait_for(lambda: epochs_written(run_dir / "metrics.jsonl"), proc)
    worker = the_worker(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 3, (tmp_path / "first.log").read_text()
    assert not psutil.wait_procs([worker], timeout=10)[1], "the run's child outlived the matrix"
    assert "Stopped by SIGTERM" in (tmp_path / "first.log").read_text()
    assert "Run stopped by SIGTERM" in (out / "logs" / f"{run_id}.log").read_text()
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "failure.json").exists()


def test_out_of_memory_in_a_worker_is_a_failure_not_an_interruption(tmp_path, monkeypatch, capsys):
    from prunekit.core.run import runner
    from prunekit.core.train.preemption import EXIT_INTERRUPTED
    from prunekit.errors import RunFailed
    from prunekit.matrix import worker

    def out_of_memory(*args, **kwargs):
        try:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        except torch.OutOfMemoryError as exc:
            raise RunFailed("run failed", "OutOfMemoryError: CUDA out of memory", "Traceback ...\n") from exc

    monkeypatch.setattr(runner, "run", out_of_memory)
    monkeypatch.setattr(worker, "_follow_parent", lambda parent: None)
    monkeypatch.setenv(worker.CONFIG_ENV, json.dumps({"out": str(tmp_path / "run"), "quiet": True}))
    with pytest.raises(SystemExit) as info:
        worker.main(["0", worker.RESUME_FLAG])
    assert info.value.code == worker.EXIT_OUT_OF_MEMORY != EXIT_INTERRUPTED
    assert f"{worker.FAILURE_MARK}out of memory" in capsys.readouterr().err


def test_a_lock_held_by_another_process_refuses_a_run_until_that_process_is_killed(tmp_path):
    """Two real processes: a holder of run.lock (then SIGKILLed: the kernel releases flock) and `prunekit run`."""
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    hold = "import sys; from pathlib import Path; from prunekit.core.rundir.runlock import RunLock; "
    hold += "RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        command = [sys.executable, "-m", "prunekit.cli", "run", *FAST, "--out", str(run_dir)]
        env = os.environ | {"OMP_NUM_THREADS": "1"}
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        # the directory is not empty (run.lock), so the emptiness check refuses first; either way: one line, exit 2
        assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1, second.stderr
        from prunekit.core.rundir.runlock import RunLock

        with pytest.raises(prunekit.errors.UsageError, match="in use by another prunekit process"):
            RunLock(run_dir).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    mine = RunLock(run_dir)
    mine.acquire()  # the killed holder's lock went with it
    mine.release()
