"""Sample events, as the core sends them to a tracker, for conformance checks and plugin tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prunekit.core.tracking.protocol import RunStart

LAYERS = ("conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight")


def sample_config(run_dir: Path) -> dict[str, Any]:
    """A resolved config as ``config.yaml`` holds it."""
    return {
        "model": "lenet5",
        "dataset": "digits",
        "optimizer": "adamw",
        "lr": 0.001,
        "weight_decay": 0.0005,
        "pruner": "magnitude",
        "pruner_opts": {"scope": "global"},
        "sparsity": 0.7,
        "schedule": "gmp",
        "epochs": 2,
        "batch_size": 32,
        "seed": 0,
        "samplers": ["process"],
        "device": "cpu",
        "out": str(run_dir),
        "trackers": ["conformance"],
        "tracker_opts": {},
    }


def sample_run_start(
    run_dir: Path, *, group: str | None = "conformance-matrix", previous: dict[str, Any] | None = None
) -> RunStart:
    """The RunStart the core sends for :func:`sample_config`."""
    return RunStart(
        run_dir=Path(run_dir),
        name=Path(run_dir).name,
        config=sample_config(run_dir),
        group=group,
        resumed=previous is not None,
        previous=dict(previous or {}),
        prunekit_version="0.1.0",
        target_sparsity=0.7,
    )


def sample_epochs(epochs: int = 2, first: int = 1) -> list[dict[str, Any]]:
    """Epoch records as ``log_epoch`` receives them (numbers change every epoch)."""
    out = []
    for epoch in range(first, first + epochs):
        sparsity = min(0.7, 0.35 * epoch)
        out.append(
            {
                "epoch": epoch,
                "step": 45 * epoch,
                "train_loss": 2.0 / epoch,
                "train_accuracy": 40.0 + 20 * epoch,
                "test_loss": 2.1 / epoch,
                "test_accuracy": 38.5 + 20 * epoch,
                "sparsity": sparsity,
                "sparsity_all": sparsity * 0.99,
                "scheduled_sparsity": sparsity,
                "lr": 0.001 / epoch,
                "epoch_time_s": 1.25,
                "layer_sparsity": {name: sparsity * (0.8 + 0.1 * i) for i, name in enumerate(LAYERS)},
            }
        )
    return out


def sample_memory(samples: int = 6) -> list[dict[str, Any]]:
    """Timeline records as ``log_memory`` receives them, 0.5 s apart."""
    return [
        {
            "t": 0.5 * i,
            "monotonic": 1000.0 + 0.5 * i,
            "sampler": "process",
            "scope": "process",
            "phase": "train" if i % 3 else "eval",
            "step": 15 * i,
            "figures": {"rss_bytes": float(200_000_000 + 1_000_000 * i)},
        }
        for i in range(samples)
    ]


def sample_summary(run_dir: Path) -> dict[str, Any]:
    """A completed run's summary, ledger included (the shape of ``summary.json``)."""
    ledger = {
        "parameters": 247_000,
        "buffers": 0,
        "gradients": 247_000,
        "optimizer_state": 494_000,
        "optimizer_scalars": 80,
        "pruner_state": 61_470,
        "total": 1_049_550,
        "prunable_weights": 61_470,
        "parameter_count": 61_750,
        "pruner_state_bytes_per_prunable_weight": 1.0,
        "optimizer_state_bytes_per_parameter": 8.0,
    }
    return {
        "status": "completed",
        "run_dir": str(run_dir),
        "model": "lenet5",
        "dataset": "digits",
        "optimizer": "adamw",
        "lr": 0.001,
        "weight_decay": 0.0005,
        "pruner": "magnitude",
        "seed": 0,
        "epochs": 2,
        "batch_size": 32,
        "steps": 90,
        "final_test_accuracy": 78.5,
        "best_test_accuracy": 78.5,
        "best_epoch": 2,
        "final_train_loss": 1.0,
        "final_test_loss": 1.05,
        "target_sparsity": 0.7,
        "achieved_sparsity": 0.7,
        "achieved_sparsity_all_parameters": 0.693,
        "target_reached": True,
        "wall_time_s": 5.0,
        "train_time_s": 3.0,
        "eval_time_s": 0.5,
        "mean_step_time_s": 0.033,
        "ledger": ledger,
        "samplers": {
            "process": {
                "scope": "process",
                "samples": 6,
                "errors": 0,
                "figures": {"rss_bytes": {"peak": 205_000_000.0, "mean": 202_500_000.0}},
            }
        },
        "warnings": [],
        "environment": {"python": "3.11", "argv": ["prunekit", "run"]},
        "prunekit_version": "0.1.0",
    }


def sample_files(run_dir: Path) -> dict[str, Path]:
    """Write the run directory's small text files and return them as RunEnd.files."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "config.yaml": "\n".join(f"{k}: {json.dumps(v)}" for k, v in sample_config(run_dir).items()) + "\n",
        "metrics.jsonl": "".join(
            json.dumps({k: v for k, v in r.items() if k != "layer_sparsity"}) + "\n" for r in sample_epochs()
        ),
        "timeline.jsonl": "".join(json.dumps(r) + "\n" for r in sample_memory()),
    }
    for name, text in files.items():
        (run_dir / name).write_text(text, encoding="utf-8")
    return {name: run_dir / name for name in files}
