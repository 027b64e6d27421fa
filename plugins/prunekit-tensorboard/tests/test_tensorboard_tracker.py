"""The tensorboard tracker passes the conformance kit, and TensorBoard's own reader
(``event_accumulator``) reads back exactly what it was sent."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util

from prunekit.api import RunEnd
from prunekit.testing.runs import short_run
from prunekit.testing.tracker_conformance import (
    check_tracker,
    run_dispatched,
    sample_epochs,
    sample_files,
    sample_memory,
    sample_summary,
)
from prunekit_tensorboard import EPOCH_TAGS, TensorBoardTracker


def read(path):
    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    return acc


def text(acc, tag):
    return tensor_util.make_ndarray(acc.Tensors(f"{tag}/text_summary")[-1].tensor_proto)[0].decode()


def test_conforms(tmp_path):
    report = check_tracker(TensorBoardTracker, {}, run_dir=tmp_path, credentials=["PRUNEKIT_TEST_TOKEN"])
    assert report.state["log_dir"].endswith("tensorboard")
    assert report.memory_interval_s == 1.0


def test_completed_run_reads_back(tmp_path):
    run_dir = tmp_path / "run-a"
    run_dispatched(
        TensorBoardTracker, {}, run_dir, RunEnd("completed", summary=sample_summary(run_dir), files=sample_files(run_dir))
    )
    acc = read(run_dir / "tensorboard")
    epochs = sample_epochs()
    for key, tag in EPOCH_TAGS.items():
        assert [(e.step, e.value) for e in acc.Scalars(tag)] == [(r["epoch"], pytest.approx(r[key])) for r in epochs]
    layers = epochs[-1]["layer_sparsity"]
    for name, value in layers.items():
        assert acc.Scalars(f"layer_sparsity/{name}")[-1].value == pytest.approx(value)
    # memory: one point per second of the 0.5 s samples, in MiB, at the optimizer step
    memory = [(e.step, e.value) for e in acc.Scalars("memory/process/rss_MiB")]
    expected = [(s["step"], pytest.approx(s["figures"]["rss_bytes"] / 2**20)) for s in sample_memory()[::2]]
    assert memory == expected
    ledger = text(acc, "ledger")
    assert "| optimizer_state | 494,000 |" in ledger and "| pruner_state | 61,470 |" in ledger
    assert text(acc, "status") == "completed"
    hp = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(hp["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["pruner"].string_value == "magnitude"
    assert start.hparams["sparsity"].number_value == pytest.approx(0.7)
    assert acc.Scalars("hparams/final_test_accuracy")[-1].value == pytest.approx(78.5)


def test_failed_run_records_status_and_reason(tmp_path):
    run_dir = tmp_path / "run-f"
    run_dispatched(TensorBoardTracker, {"layers": False}, run_dir, RunEnd("failed", reason="loss became nan"), epochs=1)
    acc = read(run_dir / "tensorboard")
    assert text(acc, "status") == "failed: loss became nan"
    assert not [t for t in acc.Tags()["scalars"] if t.startswith(("layer_sparsity/", "hparams/"))]


def test_log_dir_holds_one_subdirectory_per_run(tmp_path):
    logs = tmp_path / "logs"
    for name in ("run-1", "run-2"):
        run_dispatched(
            TensorBoardTracker,
            {"log_dir": str(logs), "memory_interval_s": 0.0},
            tmp_path / name,
            RunEnd("interrupted", reason="SIGINT"),
            epochs=1,
        )
    assert sorted(p.name for p in logs.iterdir()) == ["run-1", "run-2"]
    acc = read(logs / "run-2")
    assert "memory/process/rss_MiB" not in acc.Tags()["scalars"]
    assert text(acc, "status") == "interrupted: SIGINT"
    assert not (tmp_path / "run-1" / "tensorboard").exists()


def test_a_real_run(tmp_path):
    out, summary = short_run(tmp_path / "run", trackers=["tensorboard"], tracker_opts={"tensorboard": {"memory_interval_s": 0.1}})
    assert summary["trackers"]["tensorboard"]["errors"] == 0
    acc = read(out / "tensorboard")
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(e.step, e.value) for e in acc.Scalars("accuracy/test")] == [
        (r["epoch"], pytest.approx(r["test_accuracy"])) for r in metrics
    ]
    assert acc.Scalars("sparsity/prunable")[-1].value == pytest.approx(summary["achieved_sparsity"])
    assert len([t for t in acc.Tags()["scalars"] if t.startswith("layer_sparsity/")]) == 5
    assert acc.Scalars("memory/process/rss_MiB")
    assert f"| total | {summary['ledger']['total']:,} |" in text(acc, "ledger")
