"""Models that do not fit the data, and unexpected exceptions during a single run (issue 9)."""

from __future__ import annotations

import json
import types

import pytest
import torch
from torch import nn

from prunekit import hookimpl
from prunekit.core.plugins import loading as plugins

TINY = [
    "--dataset",
    "synthetic",
    "--dataset-opt",
    "train_size=16",
    "--dataset-opt",
    "test_size=8",
    "--batch-size",
    "8",
    "--epochs",
    "1",
    "--quiet",
]


def test_vit_is_built_for_the_dataset_image_size(tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli("run", "--model", "timm:vit_tiny_patch16_224", *TINY, "--model-opt", "drop_rate=0.1", "--out", out)
    assert result.code == 0, result.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "timm:vit_tiny_patch16_224" and summary["steps"] == 2
    assert summary["model_options"] == {"drop_rate": 0.1, "drop_path_rate": 0.0}


def _plugin(**hooks):
    module = types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})
    return module


class Fixed(nn.Module):
    """Takes flattened 1x8x8 inputs only."""

    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class Exploding(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, num_classes)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.training and self.calls > 2:
            raise ZeroDivisionError("toy model failed on purpose\nsecond line")
        return self.fc(x.flatten(1))


def _register(tmp_models):
    def register_models(register):
        for name, factory in tmp_models.items():
            register(name, factory, description="test model")

    plugins.reset({"toy-models": _plugin(register_models=register_models)})


@pytest.mark.parametrize(
    "name, factory, words",
    [
        (
            "toy-fixed",
            lambda num_classes, in_channels, image_size: Fixed(num_classes),
            "cannot take synthetic inputs of shape (3, 32, 32)",
        ),
        ("toy-shape", lambda num_classes, in_channels, image_size: nn.Flatten(), "gives outputs of shape (2, 3072)"),
    ],
)
def test_model_that_cannot_take_the_data_fails_before_the_run_directory(tmp_path, run_cli, name, factory, words):
    _register({name: factory})
    out = tmp_path / "run"
    result = run_cli("run", "--model", name, *TINY, "--out", out)
    assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert f"Model '{name}' " in result.err and words in result.err
    assert not out.exists()


def test_unexpected_exception_is_one_line_exit_1_with_the_traceback_kept(tmp_path, run_cli):
    _register({"toy-exploding": lambda num_classes, in_channels, image_size: Exploding(num_classes)})
    out = tmp_path / "run"
    result = run_cli("run", "--model", "toy-exploding", *TINY, "--pruner", "none", "--out", out)
    assert result.code == 1 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert result.err.startswith("Error: run failed: ZeroDivisionError: toy model failed on purpose (traceback in ")
    failure = json.loads((out / "failure.json").read_text())
    assert failure["status"] == "failed" and failure["exception"] == "ZeroDivisionError"
    assert failure["reason"] == "ZeroDivisionError: toy model failed on purpose"
    assert failure["traceback"][0].startswith("Traceback") and "second line" in failure["traceback"][-1]
    assert failure["config"]["model"] == "toy-exploding" and failure["epochs_completed"] == 0
    assert not (out / "summary.json").exists()


def test_divergence_also_leaves_a_failure_record(tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli(
        "run", "--epochs", "1", "--optimizer", "sgd", "--lr", "1e6", "--warmup", "0", "--frequency", "5", "--out", out, "-q"
    )
    assert result.code == 1
    failure = json.loads((out / "failure.json").read_text())
    assert failure["reason"].startswith("training diverged (NaN/inf loss): training loss became")
    assert torch.isfinite(torch.tensor(failure["wall_time_s"]))
