"""Trackers in a matrix: set in the spec, one group (the matrix name) for every run, run ids unchanged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from prunekit.core.config.settings import RunConfig
from prunekit.errors import UsageError
from prunekit.matrix.hashing import run_id
from prunekit.matrix.spec import spec_from_text
from prunekit.testing.runs import short_run_command

RECORDER = """
import json
from pathlib import Path

from prunekit.api import Option, hookimpl


class FileRecorder:
    memory_interval_s = None

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)

    def start(self, run):
        self.path = self.log_dir / f"{run.name}.jsonl"
        self.write({"event": "start", "group": run.group, "trackers": run.config["trackers"]})

    def write(self, record):
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\\n")

    def log_epoch(self, record):
        self.write({"event": "epoch", "epoch": record["epoch"]})

    def log_memory(self, sample):
        pass

    def finish(self, end):
        accuracy = end.summary["final_test_accuracy"] if end.summary else None
        self.write({"event": "finish", "status": end.status, "reason": end.reason, "accuracy": accuracy})


@hookimpl
def register_trackers(register):
    register("file-recorder", FileRecorder, options=(Option("log_dir", str, "", "where to write"),))
"""

SPEC = """
name: watched
datasets: [{{name: synthetic, options: {{train_size: 32, test_size: 16, channels: 1}}}}]
optimizers: [adamw]
pruners: [none, magnitude]
sparsities: [0.5]
settings:
  epochs: 1
  batch_size: 16
  trackers: [file-recorder]
  tracker_opts: {{file-recorder: {{log_dir: {logs}}}}}
"""


def test_trackers_do_not_change_run_ids_and_group_is_the_matrix_s():
    plain = RunConfig(pruner="magnitude")
    tracked = RunConfig(pruner="magnitude", trackers=["mlflow"], tracker_opts={"mlflow": {"experiment": "x"}}, group="g")
    assert run_id(plain) == run_id(tracked)
    with pytest.raises(UsageError, match="Setting 'group' is decided by prunekit matrix"):
        spec_from_text("settings: {group: mine}", "spec", "m")
    spec = spec_from_text("settings: {trackers: [tensorboard], tracker_opts: {tensorboard: {log_dir: tb}}}", "spec", "m")
    assert spec.settings["trackers"] == ["tensorboard"]
    assert spec.spec_hash == spec_from_text("settings: {}", "spec", "m").spec_hash  # resumable with trackers added


def install_recorder(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "prunekit_file_recorder.py").write_text(RECORDER)
    info = site / "prunekit_file_recorder-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: prunekit-file-recorder\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[prunekit]\nfile-recorder = prunekit_file_recorder\n")
    return site


def test_a_matrix_sends_every_run_to_its_trackers_under_one_group(tmp_path):
    site = install_recorder(tmp_path)
    spec = tmp_path / "watched.yaml"
    logs = tmp_path / "logs"
    spec.write_text(SPEC.format(logs=logs))
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prunekit.cli",
            "matrix",
            str(spec),
            "--out",
            str(tmp_path / "m"),
            "--jobs",
            "2",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ids = [r["id"] for r in json.loads((tmp_path / "m" / "matrix.json").read_text())["runs"]]
    assert sorted(p.stem for p in logs.iterdir()) == sorted(ids)
    for run in ids:
        events = [json.loads(line) for line in (logs / f"{run}.jsonl").read_text().splitlines()]
        assert [e["event"] for e in events] == ["start", "epoch", "finish"]
        assert events[0] == {"event": "start", "group": "watched", "trackers": ["file-recorder"]}
        summary = json.loads((tmp_path / "m" / "runs" / run / "summary.json").read_text())
        assert events[-1]["accuracy"] == summary["final_test_accuracy"]
        assert summary["trackers"]["file-recorder"]["errors"] == 0


def test_sigterm_ends_a_run_as_interrupted_for_its_trackers(tmp_path):
    site = install_recorder(tmp_path)
    logs, out = tmp_path / "logs", tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    args = short_run_command(out, "--tracker", "file-recorder", "--tracker-opt", f"file-recorder.log_dir={logs}", epochs=500)
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = logs / "run.jsonl"
    deadline = time.monotonic() + 240
    while not (log.exists() and '"epoch"' in log.read_text()):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 3, err  # SIGTERM in training: the step ends, a checkpoint is written
    finish = json.loads(log.read_text().splitlines()[-1])
    assert finish["event"] == "finish" and finish["status"] == "interrupted" and finish["accuracy"] is None
    assert finish["reason"].startswith("stopped by SIGTERM") and "prunekit run --resume" in finish["reason"]
    assert not (out / "summary.json").exists() and (out / "checkpoint.pt").exists()
