"""The mlflow tracker against a real tracking server and a local file store, read back
through MLflow's client API; a killed server leaves the run completing with the error counted."""

from __future__ import annotations

import json
import time

import pytest
from mlflow import MlflowClient

from prunekit.api import RunEnd
from prunekit.testing.runs import short_run
from prunekit.testing.tracker_conformance import (
    FAKE_SECRET,
    check_no_credentials,
    check_tracker,
    run_dispatched,
    sample_epochs,
    sample_files,
    sample_summary,
)
from prunekit_mlflow import CREDENTIALS, MlflowTracker


def run_of(client, run_dir):
    return client.get_run(json.loads((run_dir / "trackers.json").read_text())["conformance"]["run_id"])


def history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))]


def test_conforms_against_a_server(server, tmp_path):
    report = check_tracker(
        MlflowTracker,
        {"tracking_uri": server.uri, "figures": False},
        run_dir=tmp_path,
        outputs=[server.root],
        credentials=CREDENTIALS,
    )
    assert set(report.state) == {"run_id", "experiment_id"}


def test_a_completed_run_reads_back_through_the_client(server, tmp_path):
    run_dir = tmp_path / "run-a"
    run_dispatched(
        MlflowTracker,
        {"tracking_uri": server.uri, "memory_interval_s": 1.0},
        run_dir,
        RunEnd("completed", summary=sample_summary(run_dir), files=sample_files(run_dir)),
    )
    client = MlflowClient(server.uri)
    run = run_of(client, run_dir)
    assert client.get_experiment(run.info.experiment_id).name == "conformance-matrix"
    assert run.info.run_name == "run-a" and run.info.status == "FINISHED"
    assert run.data.params["model"] == "lenet5" and run.data.params["pruner_opts.scope"] == "global"
    tags = run.data.tags
    assert {k: tags[k] for k in ("model", "pruner", "optimizer", "target_sparsity", "achieved_sparsity", "status")} == {
        "model": "lenet5",
        "pruner": "magnitude",
        "optimizer": "adamw",
        "target_sparsity": "0.7",
        "achieved_sparsity": "0.7",
        "status": "completed",
    }
    assert tags["prunekit_version"] == "0.1.0"
    epochs = sample_epochs()
    assert history(client, run.info.run_id, "test_accuracy") == [(r["epoch"], r["test_accuracy"]) for r in epochs]
    assert history(client, run.info.run_id, "layer_sparsity/fc3.weight")[-1][1] == pytest.approx(
        epochs[-1]["layer_sparsity"]["fc3.weight"]
    )
    assert [v for _, v in history(client, run.info.run_id, "memory/process/rss_bytes")] == [200e6, 202e6, 204e6]
    assert run.data.metrics["final_test_accuracy"] == 78.5 and run.data.metrics["ledger/optimizer_state"] == 494_000
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "config.yaml", "metrics.jsonl", "timeline.jsonl", "figures"} <= names
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {"figures/accuracy_sparsity.png", "figures/memory_timeline.png"}
    local = client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path))
    assert json.loads(open(local).read())["ledger"]["total"] == 1_049_550


@pytest.mark.parametrize("status, mlflow_status", [("failed", "FAILED"), ("interrupted", "KILLED")])
def test_failed_and_interrupted_runs(server, tmp_path, status, mlflow_status):
    run_dispatched(
        MlflowTracker, {"tracking_uri": server.uri, "figures": False}, tmp_path, RunEnd(status, reason=f"why {status}"), epochs=1
    )
    run = run_of(MlflowClient(server.uri), tmp_path)
    assert run.info.status == mlflow_status and run.data.tags["status_reason"] == f"why {status}"


def test_a_resumed_run_continues_the_same_mlflow_run(server, tmp_path):
    options = {"tracking_uri": server.uri, "experiment": "resumes", "figures": False}
    run_dispatched(MlflowTracker, options, tmp_path, RunEnd("interrupted", reason="SIGINT"), epochs=1)
    state = json.loads((tmp_path / "trackers.json").read_text())["conformance"]
    run_dispatched(
        MlflowTracker,
        options,
        tmp_path,
        RunEnd("completed", summary=sample_summary(tmp_path)),
        previous=state,
        epochs=1,
        first_epoch=2,
    )
    client = MlflowClient(server.uri)
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["prunekit.resumed"] == "true"
    assert [s for s, _ in history(client, state["run_id"], "test_accuracy")] == [1, 2]
    experiment = client.get_experiment_by_name("resumes")
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_runs_of_one_group_share_one_experiment(server, tmp_path):
    options = {"tracking_uri": server.uri, "figures": False, "artifacts": False}
    for name in ("run-1", "run-2"):  # what a matrix does: group = the matrix name
        run_dispatched(MlflowTracker, options, tmp_path / name, RunEnd("completed", summary=sample_summary(tmp_path)), epochs=1)
    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("conformance-matrix")
    names = {r.info.run_name for r in client.search_runs([experiment.experiment_id])}
    assert {"run-1", "run-2"} <= names


def test_a_local_file_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps file stores behind this switch
    uri = (tmp_path / "mlruns").as_uri()
    check_tracker(
        MlflowTracker,
        {"tracking_uri": uri, "figures": False},
        run_dir=tmp_path / "runs",
        outputs=[tmp_path / "mlruns"],
        credentials=CREDENTIALS,
    )
    client = MlflowClient(uri)
    run = run_of(client, tmp_path / "runs" / "dispatched")
    assert run.info.status == "FINISHED"
    assert history(client, run.info.run_id, "sparsity") == [(1, 0.35), (2, 0.7)]


def test_credentials_reach_no_file_parameter_or_output(server, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", FAKE_SECRET)
    uri = server.uri.replace("http://", f"http://alice:{FAKE_SECRET}@")  # basic auth in the URI, ignored here
    out, summary = short_run(
        tmp_path / "run", epochs=1, trackers=["mlflow"], tracker_opts={"mlflow": {"tracking_uri": uri, "experiment": "secrets"}}
    )
    assert summary["trackers"]["mlflow"]["errors"] == 0
    client = MlflowClient(server.uri)
    run = client.get_run(json.loads((out / "trackers.json").read_text())["mlflow"]["run_id"])
    assert run.data.params["tracker_opts.mlflow.tracking_uri"] == server.uri.replace("http://", "http://***@")
    assert FAKE_SECRET not in json.dumps(run.to_dictionary())
    captured = capfd.readouterr()
    assert FAKE_SECRET not in captured.out + captured.err and "View run" not in captured.out
    check_no_credentials([out, server.root], FAKE_SECRET)


def test_killing_the_server_mid_run_leaves_the_run_completing(server, tmp_path, monkeypatch):
    """Runs last in this module: it kills the module's server."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", FAKE_SECRET)
    out = tmp_path / "run"

    def kill_after_first_epoch(record):
        if record["epoch"] == 1:
            deadline = time.monotonic() + 120
            while not (out / "trackers.json").exists() and time.monotonic() < deadline:
                time.sleep(0.1)  # the tracker has its MLflow run: now take the server away
            server.kill()

    warnings = []
    out, summary = short_run(
        out,
        epochs=3,
        trackers=["mlflow"],
        on_epoch=kill_after_first_epoch,
        warn=warnings.append,
        tracker_opts={"mlflow": {"tracking_uri": server.uri, "experiment": "killed"}},
    )
    assert summary["status"] == "completed" and (out / "summary.json").exists()
    counts = summary["trackers"]["mlflow"]
    assert counts["errors"] >= 1 and "API request to http://127.0.0.1" in counts["first_error"], counts
    assert len([w for w in warnings if "tracker 'mlflow' failed" in w]) == 1
    assert summary["final_test_accuracy"] > 0
    check_no_credentials([out, server.root], FAKE_SECRET)
