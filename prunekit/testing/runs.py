"""Real, short prunekit runs for plugin tests (seconds on a CPU)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: LeNet-5 on a small synthetic split: two epochs of a few steps, pruned to 50%.
SHORT_RUN = {
    "dataset": "synthetic",
    "dataset_opts": {"train_size": 128, "test_size": 64, "channels": 1},
    "epochs": 2,
    "batch_size": 32,
    "sparsity": 0.5,
    "sample_interval": 0.1,
    "quiet": True,
}


def short_run(
    out: Path,
    *,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    warn: Callable[[str], None] | None = None,
    **settings: Any,
) -> tuple[Path, dict[str, Any]]:
    """Run prunekit in this process with :data:`SHORT_RUN` overridden by ``settings``
    (any ``prunekit run`` setting, e.g. ``trackers=["mine"]``); return the run
    directory and its summary."""
    from prunekit.core.config.settings import config_from_mapping
    from prunekit.core.run.runner import run

    config = config_from_mapping(SHORT_RUN | settings | {"out": str(out)})
    run_dir, summary = run(config, on_epoch=on_epoch, warn=warn)
    return run_dir, dict(summary)


def short_run_command(out: Path, *options: str, epochs: int = 2) -> list[str]:
    """The command line of a short ``prunekit run`` in a child process (synthetic data, 64
    training and 32 test examples, quiet) writing ``out``; ``options`` are further
    ``prunekit run`` options, e.g. ``"--tracker", "mine"``."""
    data = ["--dataset", "synthetic", "--dataset-opt", "train_size=64", "--dataset-opt", "test_size=32"]
    return [sys.executable, "-m", "prunekit.cli", "run", *data, "--epochs", str(epochs), "--out", str(out), *options, "-q"]
