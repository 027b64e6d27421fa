"""`prunekit run` end to end on the embedded digits data, and its bad-input paths."""

import json

import pytest
import yaml

from prunekit.core.config.settings import RunConfig
from prunekit.core.run.runner import run
from prunekit.core.rundir.layout import EPOCH_METRICS

FAST = ("--epochs", "1", "--quiet")


def read(out):
    summary = json.loads((out / "summary.json").read_text())
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    timeline = [json.loads(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    config = yaml.safe_load((out / "config.yaml").read_text())
    return summary, metrics, timeline, config


def test_one_epoch_digits_job_writes_an_honest_run_directory(tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli("run", "--epochs", "2", "--sample-interval", "0.05", "--out", out, "--quiet")
    assert result.code == 0, result.err
    assert "Run complete" in result.out and "70.00% of prunable weights (target 70.00%, reached)" in result.out
    summary, metrics, timeline, config = read(out)
    assert summary["model"] == "lenet5" and summary["dataset"] == "digits"
    assert summary["optimizer"] == "adamw" and summary["pruner"] == "magnitude"
    assert summary["pruner_options"] == {"scope": "global", "mask_storage": "bool", "structure": "unstructured"}
    assert summary["target_sparsity"] == 0.7
    assert summary["achieved_sparsity"] == pytest.approx(round(0.7 * 61_470) / 61_470)
    assert summary["target_reached"] is True
    assert summary["parameter_counts"] == {"total": 61_750, "prunable": 61_470}
    ledger = summary["ledger"]
    assert (ledger["parameters"], ledger["optimizer_state"], ledger["pruner_state"]) == (247_000, 494_000, 61_470)
    assert summary["steps"] == 2 * 45 and summary["mean_step_time_s"] > 0
    assert summary["final_test_accuracy"] == metrics[-1]["test_accuracy"] > 50
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics[-1]["sparsity"] == summary["achieved_sparsity"]
    assert all(set(m) == {"epoch", "step", *EPOCH_METRICS} for m in metrics)  # what trackers send
    assert summary["samplers"]["process"]["samples"] == len(timeline) >= 2
    assert "train" in {r["phase"] for r in timeline}
    assert timeline[-1]["step"] == summary["steps"] and timeline[-1]["figures"]["rss_bytes"] > 0
    assert summary["environment"]["torch"] and summary["environment"]["device"] == "cpu"
    assert config["frequency"] == summary["schedule"]["frequency"] and config["pruner"] == "magnitude"


def test_same_seed_same_metrics(tmp_path):
    a = run(RunConfig(epochs=1, out=str(tmp_path / "a"), quiet=True))[1]
    b = run(RunConfig(epochs=1, out=str(tmp_path / "b"), quiet=True))[1]
    c = run(RunConfig(epochs=1, seed=1, out=str(tmp_path / "c"), quiet=True))[1]
    keys = ("final_test_accuracy", "final_train_loss", "final_test_loss", "achieved_sparsity")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert a["final_train_loss"] != c["final_train_loss"]


def test_config_file_with_command_line_override(tmp_path, run_cli):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("sparsity: 0.5\nepochs: 1\nlr: 2e-3\npruner: magnitude\npruner_opts: {scope: layer}\nquiet: true\n")
    out = tmp_path / "run"
    assert run_cli("run", "--config", cfg, "--sparsity", "0.6", "--out", out).code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_sparsity"] == 0.6 and summary["pruner_options"] == {
        "scope": "layer",
        "mask_storage": "bool",
        "structure": "unstructured",
    }
    assert summary["lr"] == 2e-3  # YAML reads 2e-3 as a string; the config takes it as the number


def test_warmup_beyond_training_warns_and_reports_target_missed(tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli("run", *FAST, "--warmup", "40", "--prune-end", "500", "--out", out)
    assert result.code == 0
    assert "will not be reached" in result.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_reached"] is False and summary["achieved_sparsity"] < 0.7
    assert "will not be reached" in summary["warnings"][0]


def test_dense_run_reports_zero_target(tmp_path, run_cli):
    out = tmp_path / "dense"
    assert run_cli("run", *FAST, "--pruner", "none", "--out", out).code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_sparsity"] == 0.0 and summary["achieved_sparsity"] == 0.0
    assert summary["ledger"]["pruner_state"] == 0 and summary["target_reached"] is True


def test_interrupted_run_leaves_no_summary(tmp_path):
    def interrupt(record):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(epochs=2, out=str(out), quiet=True), on_epoch=interrupt)
    assert (out / "metrics.jsonl").exists() and not (out / "summary.json").exists()


BAD = [
    (["--model", "vgg"], "Unknown model 'vgg'. Available:"),
    (["--dataset", "svhn"], "Unknown dataset 'svhn'. Available:"),
    (["--optimizer", "lion"], "Unknown optimizer 'lion'. Available:"),
    (["--pruner", "obs"], "Unknown pruner 'obs'. Available:"),
    (["--sampler", "nosuch"], "Unknown sampler 'nosuch'. Available: "),
    (["--sparsity", "1.0"], "Sparsity must be in [0, 1), got 1.0."),
    (["--sparsity", "-0.1"], "Sparsity must be in [0, 1)"),
    (["--epochs", "0"], "Epochs must be at least 1, got 0."),
    (["--batch-size", "0"], "Batch size must be at least 1, got 0."),
    (["--frequency", "0"], "Frequency must be at least 1"),
    (["--pruner-opt", "scope=everywhere"], "Option 'scope' of pruner 'magnitude' must be one of: global, layer"),
    (
        ["--pruner-opt", "alpha=1"],
        "Unknown option 'alpha' for pruner 'magnitude'. Valid options: scope, mask_storage, structure.",
    ),
    (["--pruner-opt", "scope"], "--pruner-opt expects key=value"),
    (["--dataset", "mnist"], "Dataset 'mnist' reads from disk: pass --data-dir"),
    (["--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], "Data directory /nonexistent/mnist does not exist"),
    (["--device", "cuda"], "no CUDA/ROCm GPU is available"),
    (["--device", "tpu"], "Unknown device 'tpu'"),
    (["--sampler", "torch"], "Sampler 'torch' reads the PyTorch CUDA/ROCm allocator, but this run is on cpu"),
    (["--epochs", "many"], "Invalid value for '--epochs'"),
    (["--config", "/nonexistent.yaml"], "Config file /nonexistent.yaml does not exist."),
    (["--lr", "nan"], "Learning rate must be a positive finite number, got nan."),
    (["--lr", "inf"], "Learning rate must be a positive finite number, got inf."),
    (["--weight-decay", "nan"], "Weight decay must be a finite number >= 0, got nan."),
    (["--sample-interval", "nan"], "Sample interval must be a positive finite number"),
    (
        ["--optimizer", "adamwadv", "--optimizer-opt", "eta_min=nan"],
        "Option 'eta_min' of optimizer 'adamwadv' must be a finite number, got 'nan'.",
    ),
    (["--model-opt", "depth=3"], "Unknown option 'depth' for model 'lenet5'. Valid options: none."),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, run_cli, args, message):
    import torch

    if torch.cuda.is_available() and "cuda" in " ".join(args + [message]):
        pytest.skip("needs a machine without a GPU")
    out = tmp_path / "run"
    result = run_cli("run", *args, "--out", out)
    assert result.code == 2
    assert result.err.startswith("Error: ") and message in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not out.exists()


def test_bad_config_files(tmp_path, run_cli):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("epochs: [1,\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("epochs: 1\nlearning_rate: 0.1\n")
    wrong_type = tmp_path / "wrong.yaml"
    wrong_type.write_text("epochs: ten\n")
    for path, message in (
        (bad_yaml, "is not valid YAML at line"),
        (unknown, "Unknown key 'learning_rate' in"),
        (wrong_type, "Setting 'epochs' must be int, got 'ten'."),
    ):
        result = run_cli("run", "--config", path, "--out", tmp_path / "run")
        assert result.code == 2 and message in result.err and result.err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_config_file_that_is_not_utf8_is_one_line(tmp_path, run_cli):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("model: lenet5  # caf\u00e9\n".encode("latin-1"))
    result = run_cli("run", "--config", latin1, "--out", tmp_path / "run")
    assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert f"Config file {latin1} is not UTF-8 text (byte 0xe9" in result.err
    directory = run_cli("run", "--config", tmp_path, "--out", tmp_path / "run")
    assert directory.code == 2 and "Cannot read config file" in directory.err and directory.err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_model_options_from_a_config_file_are_validated(tmp_path, run_cli):
    config = tmp_path / "run.yaml"
    config.write_text("model: timm:resnet18\nmodel_opts: {drop_rate: lots}\n")
    result = run_cli("run", "--config", config, "--out", tmp_path / "run")
    assert result.code == 2 and result.err.count("\n") == 1
    assert "Option 'drop_rate' of model 'timm:resnet18' must be float, got 'lots'." in result.err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [["--prune-end", "3"], ["--warmup", "10", "--prune-end", "10"]])
def test_explicit_prune_end_at_or_before_the_warmup_is_refused(tmp_path, run_cli, args):
    """digits, batch 32: 45 steps per epoch, so the default warm-up is step 4 (10%)."""
    out = tmp_path / "run"
    result = run_cli("run", "--epochs", "1", *args, "--out", out)
    assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "Prune end" in result.err and "must come after" in result.err and "warm-up" in result.err
    assert not out.exists()


def test_unwritable_and_occupied_out(tmp_path, run_cli):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("run", "--out", blocker / "run")
    assert result.code == 2 and "Cannot write to --out" in result.err
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "summary.json").write_text("{}")
    result = run_cli("run", "--out", occupied)
    assert result.code == 2 and "already exists and is not empty" in result.err
    assert (occupied / "summary.json").read_text() == "{}"
    result = run_cli("run", "--out", blocker)
    assert result.code == 2 and result.err.count("\n") == 1
    assert f"--out {blocker} is an existing file, not a directory" in result.err and "not empty" not in result.err
    assert blocker.read_text() == "x"


def test_divergence_during_pruning_is_one_line_exit_1(tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli(
        "run", "--epochs", "1", "--optimizer", "sgd", "--lr", "1e6", "--warmup", "0", "--frequency", "5", "--out", out, "-q"
    )
    assert result.code == 1
    assert result.err.startswith("Error: run failed: training loss became") and result.err.count("\n") == 1
    assert not (out / "summary.json").exists()
