"""Trackers in real runs: what they receive, final statuses, failures, credentials, CLI and config."""

from __future__ import annotations

import json
import re
import types

import pytest
import yaml

from prunekit.api import Option, hookimpl
from prunekit.core.config.settings import RunConfig
from prunekit.core.plugins import loading as plugins
from prunekit.core.run.runner import RunFailed, run

TOKEN = "tok-fake-0123456789abcdef"
EVENTS: dict[str, list] = {}


class Recording:
    memory_interval_s = 0.01

    def __init__(self, key="default", fail=False):
        self.key, self.fail = key, fail

    def _add(self, name, payload):
        if self.fail:
            raise ConnectionError("tracking server at http://127.0.0.1:9/ refused the connection")
        EVENTS.setdefault(self.key, []).append((name, payload))

    def start(self, run):
        self._add("start", run)
        return {"resume_id": self.key}

    def log_epoch(self, record):
        self._add("epoch", record)

    def log_memory(self, sample):
        self._add("memory", sample)

    def finish(self, end):
        self._add("finish", end)


def tracker_plugin():
    module = types.ModuleType("prunekit_recording")

    @hookimpl
    def register_trackers(register):
        options = (Option("key", str, "default", "where events go"), Option("fail", bool, False, "raise on every call"))
        register("recording", Recording, description="records events", options=options, credentials=("REC_SECRET",))
        register("failing", lambda **o: Recording(fail=True), description="always fails")

    module.register_trackers = register_trackers
    return module


@pytest.fixture
def loaded():
    EVENTS.clear()
    return plugins.reset({"recording": tracker_plugin()})


def config(tmp_path, name="r", **kw):
    base = dict(
        dataset="synthetic",
        dataset_opts={"train_size": 64, "test_size": 32, "channels": 1},
        epochs=2,
        batch_size=16,
        sparsity=0.5,
        sample_interval=0.05,
        out=str(tmp_path / name),
        quiet=True,
    )
    return RunConfig(**(base | kw))


def test_trackers_receive_the_run_and_a_failing_one_is_counted(tmp_path, loaded, monkeypatch):
    monkeypatch.setenv("REC_SECRET", TOKEN)
    monkeypatch.setattr("sys.argv", ["prunekit", "run", "--tracker-opt", f"recording.key=http://u:{TOKEN}@h/x"])
    warnings = []
    uri = f"http://alice:{TOKEN}@127.0.0.1:5000"
    out, summary = run(
        config(tmp_path, trackers=["recording", "failing"], tracker_opts={"recording": {"key": uri}}, group="grid-1"),
        plugins=loaded,
        warn=warnings.append,
    )
    events = EVENTS[uri]
    assert [e[0] for e in events if e[0] != "memory"] == ["start", "epoch", "epoch", "finish"]
    start = events[0][1]
    assert start.group == "grid-1" and start.name == "r" and not start.resumed and start.config["epochs"] == 2
    assert start.config["tracker_opts"]["recording"]["key"] == "http://***@127.0.0.1:5000"
    epochs = [e[1] for e in events if e[0] == "epoch"]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in e.items() if k != "layer_sparsity"} for e in epochs] == metrics
    layers = epochs[-1]["layer_sparsity"]
    assert len(layers) == 5 and all(0.0 <= v <= 1.0 for v in layers.values())
    assert any(e[0] == "memory" and "rss_bytes" in e[1]["figures"] for e in events)
    end = events[-1][1]
    assert end.status == "completed" and end.reason is None
    assert end.summary["ledger"]["total"] == summary["ledger"]["total"]
    assert sorted(end.files) == ["config.yaml", "metrics.jsonl", "timeline.jsonl"]
    counts = summary["trackers"]
    assert counts["recording"]["errors"] == 0 and counts["recording"]["finished"]
    assert counts["failing"]["errors"] == 1 and counts["failing"]["skipped"] >= 3
    assert len([w for w in warnings if "tracker 'failing' failed (ConnectionError" in w]) == 1
    assert json.loads((out / "trackers.json").read_text()) == {"recording": {"resume_id": "http://***@127.0.0.1:5000"}}
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["trackers"] == json.loads(json.dumps(counts))
    assert on_disk["environment"]["argv"][-1] == "recording.key=http://***@h/x"
    for path in out.rglob("*"):
        assert TOKEN not in path.read_text(errors="replace"), path


def test_a_failed_run_tells_trackers_why(tmp_path, loaded):
    def explode(record):
        raise RuntimeError("disk full\nsecond line")

    with pytest.raises(RunFailed) as failed:  # the runner wraps it, keeping the traceback in failure.json
        run(config(tmp_path, epochs=1, trackers=["recording"]), plugins=loaded, on_epoch=explode)
    assert isinstance(failed.value.__cause__, RuntimeError)
    end = EVENTS["default"][-1][1]
    assert (end.status, end.reason, end.summary) == ("failed", "RuntimeError: disk full", None)
    assert not (tmp_path / "r" / "summary.json").exists()


def test_a_failure_after_training_tells_trackers_too(tmp_path, loaded, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("prunekit.core.run.runner.build_summary", no_space)
    with pytest.raises(RunFailed) as failed:  # the runner wraps it, keeping the traceback in failure.json
        run(config(tmp_path, epochs=1, trackers=["recording"]), plugins=loaded)
    assert isinstance(failed.value.__cause__, OSError)
    end = EVENTS["default"][-1][1]
    assert (end.status, end.reason) == ("failed", "OSError: [Errno 28] No space left on device")


def test_an_interrupted_run_tells_trackers_and_a_resume_gets_their_state_back(tmp_path, loaded):
    def interrupt(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config(tmp_path, epochs=1, trackers=["recording"]), plugins=loaded, on_epoch=interrupt)
    assert EVENTS["default"][-1][1].status == "interrupted"
    # a resumed run reuses the run directory (prunekit run --resume); trackers get back what start returned
    from prunekit.core.run import trackers as run_trackers
    from prunekit.core.tracking import dispatch, redact

    trackers = dispatch.Trackers(
        [("recording", Recording, {})], state_path=tmp_path / "r" / "trackers.json", redact=redact.Redactor(), warn=print
    )
    run_trackers.begin(trackers, tmp_path / "r", {"epochs": 1}, None)
    trackers.end(dispatch.RunEnd("completed"))
    start = EVENTS["default"][-2][1]
    assert start.resumed and start.previous == {"resume_id": "default"}


def test_cli_tracker_options_and_errors(tmp_path, loaded, run_cli):
    ok = run_cli(
        "run",
        "--dataset",
        "synthetic",
        "--dataset-opt",
        "train_size=32",
        "--dataset-opt",
        "test_size=16",
        "--epochs",
        "1",
        "--out",
        tmp_path / "ok",
        "--tracker",
        "recording",
        "--tracker-opt",
        "recording.key=cli",
        "-q",
    )
    assert ok.code == 0, ok.err
    assert re.search(r"tracker        recording: \d+ events delivered, 0 errors, 0 dropped", ok.out)
    assert yaml.safe_load((tmp_path / "ok" / "config.yaml").read_text())["tracker_opts"]["recording"]["key"] == "cli"
    for args, message in [
        (["--tracker", "nope"], "Unknown tracker 'nope'. Available: failing, "),
        (["--tracker-opt", "recording.key=x"], "Options given for tracker 'recording', which is not enabled"),
        (["--tracker", "recording", "--tracker-opt", "key=x"], "--tracker-opt expects NAME.key=value"),
        (
            ["--tracker", "recording", "--tracker-opt", "recording.fail=maybe"],
            "Option 'fail' of tracker 'recording' must be bool",
        ),
        (["--tracker", "recording", "--tracker-opt", "recording.finish_timeout_s=-1"], "must be at least 0.0"),
        (["--tracker", "recording", "--tracker-opt", "recording.colour=red"], "Unknown option 'colour' for tracker 'recording'"),
    ]:
        result = run_cli("run", "--out", tmp_path / "bad", *args)
        assert result.code == 2 and message in result.err and len(result.err.strip().splitlines()) == 1, (args, result.err)
        assert not (tmp_path / "bad").exists()
    missing = [n for n in ("tensorboard", "mlflow", "wandb") if n not in loaded.registry.names("trackers")]
    for name in missing:  # a bundled tracker whose plugin is not installed says what to install
        assert f"Install prunekit-{name}." in run_cli("run", "--tracker", name).err
    listed = run_cli("list", "trackers")
    assert (
        "recording" in listed.out
        and "key='default'" in listed.out
        and "every tracker also takes finish_timeout_s=30.0" in listed.out
    )


def test_trackers_from_a_config_file(tmp_path, loaded, run_cli):
    path = tmp_path / "run.yaml"
    path.write_text(
        "trackers: [recording]\ntracker_opts: {recording: {key: from-yaml}}\nepochs: 1\n"
        "dataset: synthetic\ndataset_opts: {train_size: 32, test_size: 16}\n"
    )
    result = run_cli("run", "--config", path, "--out", tmp_path / "y", "--tracker-opt", "recording.fail=false", "-q")
    assert result.code == 0, result.err
    assert [e[0] for e in EVENTS["from-yaml"] if e[0] != "memory"] == ["start", "epoch", "finish"]
