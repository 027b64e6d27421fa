"""The wandb tracker passes the conformance kit, and its offline run files (what
``wandb sync`` would upload) hold what it was sent, read back with W&B's protobufs."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from prunekit.api import RunEnd
from prunekit.testing.runs import short_run_command
from prunekit.testing.tracker_conformance import (
    FAKE_SECRET,
    check_tracker,
    run_dispatched,
    sample_config,
    sample_epochs,
    sample_files,
    sample_summary,
)
from prunekit_wandb import EXIT_CODES, SUMMARY_FILE, WandbTracker
from prunekit_wandb import offline as w


def test_conforms(tmp_path):
    report = check_tracker(WandbTracker, {}, run_dir=tmp_path, credentials=["WANDB_API_KEY"])
    assert len(report.state["id"]) >= 8


def test_completed_run_files(tmp_path):
    run_dir = tmp_path / "run-a"
    run_dispatched(
        WandbTracker,
        {"memory_interval_s": 1.0},
        run_dir,
        RunEnd("completed", summary=sample_summary(run_dir), files=sample_files(run_dir)),
    )
    records = w.read_run(run_dir / "wandb")
    run = records["run"][0]
    assert (run.project, run.run_group, run.display_name) == ("conformance-matrix", "conformance-matrix", "run-a")
    assert {k: v for k, v in w.config(records).items() if k != "_wandb"} == sample_config(run_dir)
    rows = w.history(records)
    epochs = [r for r in rows if "epoch" in r]
    for row, sent in zip(epochs, sample_epochs(), strict=True):
        assert row["test_accuracy"] == pytest.approx(sent["test_accuracy"]) and row["lr"] == pytest.approx(sent["lr"])
        assert row["layer_sparsity/fc1.weight"] == pytest.approx(sent["layer_sparsity"]["fc1.weight"])
    memory = [r["memory/process/rss_bytes"] for r in rows if "memory/t_s" in r]
    assert memory == [200e6, 202e6, 204e6]  # 0.5 s samples at one per second
    summary = w.summary(records)
    assert summary["status"] == "completed" and summary["final_test_accuracy"] == 78.5
    assert summary["ledger"]["optimizer_state"] == 494_000
    assert {"config.yaml", "metrics.jsonl", "timeline.jsonl", SUMMARY_FILE} <= w.files(records)
    saved = next((run_dir / "wandb").glob("offline-run-*/files")) / SUMMARY_FILE
    assert json.loads(saved.read_text())["ledger"]["total"] == 1_049_550
    assert records["exit"][0].exit_code == 0


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_failed_and_interrupted_runs_exit_non_zero_with_the_reason(tmp_path, status):
    run_dispatched(WandbTracker, {"files": False}, tmp_path / status, RunEnd(status, reason=f"why {status}"), epochs=1)
    records = w.read_run(tmp_path / status)
    assert records["exit"][0].exit_code == EXIT_CODES[status] != 0
    assert w.summary(records)["status_reason"] == f"why {status}"


def test_resumed_run_continues_the_same_wandb_run(tmp_path):
    run_dir = tmp_path / "r"
    run_dispatched(WandbTracker, {}, run_dir, RunEnd("interrupted", reason="SIGINT"), epochs=1)
    state = json.loads((run_dir / "trackers.json").read_text())["conformance"]
    run_dispatched(
        WandbTracker, {}, run_dir, RunEnd("completed", summary=sample_summary(run_dir)), previous=state, epochs=1, first_epoch=2
    )
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(state["id"] in p.name for p in offline)
    records = w.read_run(run_dir / "wandb")
    assert [r["epoch"] for r in w.history(records) if "epoch" in r] == [1, 2]


def test_a_real_run_with_a_fake_api_key(tmp_path):
    out = tmp_path / "run"
    env = os.environ | {"WANDB_API_KEY": FAKE_SECRET, "OMP_NUM_THREADS": "1"}
    args = short_run_command(out, "--tracker", "wandb", "--tracker-opt", "wandb.project=e2e")
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert FAKE_SECRET not in done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trackers"]["wandb"]["errors"] == 0 and summary["trackers"]["wandb"]["finished"]
    records = w.read_run(out / "wandb")
    assert records["run"][0].project == "e2e"
    assert [r["epoch"] for r in w.history(records) if "epoch" in r] == [1, 2]
    assert w.summary(records)["achieved_sparsity"] == pytest.approx(summary["achieved_sparsity"])
    for path in out.rglob("*"):
        if path.is_file():
            assert FAKE_SECRET.encode() not in path.read_bytes(), path
