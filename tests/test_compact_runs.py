"""Runs with state_storage=compact end bit-identical to dense ones: in one process, resumed, and under DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from built_runs import run_keeping_parts

from prunekit.core.config.settings import RunConfig
from prunekit.core.run import runner
from prunekit.core.rundir import checkpoint
from prunekit.core.sparsity.compact_state import dense_state
from prunekit.testing.resume import comparable, interrupt, one_thread, resume_run

SPAM = {"reset_interval": 7, "reset_warmup": 3, "min_history": 3, "spike_z": 1.0, "clip_theta": 50.0}
OPTIMIZERS = {"adamw": {}, "adamwspam": SPAM}
#: What differs between a dense and a compact run by design: the storage itself and its bytes.
BY_DESIGN = {"optimizer_options", "ledger", "config", "run_id"}


def _config(tmp_path: Path, name: str, pruner: str, optimizer: str, storage: str, epochs: int = 2, **extra) -> RunConfig:
    return RunConfig(
        model="lenet5",
        dataset="digits",
        pruner=pruner,
        optimizer=optimizer,
        optimizer_opts={**OPTIMIZERS[optimizer], "state_storage": storage},
        epochs=epochs,
        batch_size=128,
        sparsity=0.8,
        device="cpu",
        samplers=[],
        out=str(tmp_path / name),
        quiet=True,
        **extra,
    )


def _same_results(dense: Path, compact: Path) -> None:
    """Metrics, summary (storage and its bytes aside), per-example outcomes, weights, masks and moments."""
    (s_dense, m_dense, c_dense), (s_compact, m_compact, c_compact) = comparable(dense), comparable(compact)
    assert m_compact == m_dense
    assert {k: v for k, v in s_compact.items() if k not in BY_DESIGN} == {k: v for k, v in s_dense.items() if k not in BY_DESIGN}
    assert (compact / "test_correct.bin").read_bytes() == (dense / "test_correct.bin").read_bytes()
    for key, value in c_dense.model.items():
        assert torch.equal(c_compact.model[key], value), key
    for a, b in zip(c_compact.pruner["masks"], c_dense.pruner["masks"]):
        assert (a is None and b is None) or torch.equal(a, b)
    assert "compact_positions" in c_compact.optimizer and "compact_positions" not in c_dense.optimizer


def _moments_match(dense_built, compact_built) -> None:
    for a, b in zip(dense_built.targets, compact_built.targets):
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            mine = dense_state(compact_built.optimizer.optimizer, b.parameter, key)
            theirs = dense_state(dense_built.optimizer.optimizer, a.parameter, key)
            assert (mine is None and theirs is None) or torch.equal(mine, theirs), (a.name, key)


def _run(monkeypatch, config: RunConfig):
    with one_thread():
        return run_keeping_parts(monkeypatch, config)


@pytest.mark.parametrize(
    "pruner,optimizer,storage",
    [(p, o, "compact") for p in ("magnitude", "state", "movement-w0") for o in OPTIMIZERS]
    + [("rigl", "adamw", "compact"), ("state", "adamwspam", "compact-indexed"), ("rigl", "adamw", "compact-indexed")],
)
def test_a_compact_run_is_bit_identical_to_dense(tmp_path, monkeypatch, pruner, optimizer, storage):
    extra = {"pruner_opts": {"delta_t": 4}} if pruner == "rigl" else {}
    runs = {s: _run(monkeypatch, _config(tmp_path, s, pruner, optimizer, s, **extra)) for s in ("dense", storage)}
    (dense, dense_built), (compact, compact_built) = runs["dense"], runs[storage]
    runs["compact"] = runs.pop(storage)
    assert dense["schedule"]["mask_updates"] >= (4 if pruner == "rigl" else 10)
    if pruner == "rigl":  # weights dropped and grown back: grown ones start with zero moments, as dense
        assert compact_built.pruner.topology_updates == dense_built.pruner.topology_updates >= 3
    _same_results(tmp_path / "dense", tmp_path / storage)
    _moments_match(dense_built, compact_built)
    if optimizer == "adamwspam":
        assert compact_built.optimizer.resets == dense_built.optimizer.resets > 0
    # what the ledger counts: fewer optimizer bytes per prunable weight, the same everything else
    per = {s: sum(v["optimizer_state"] for v in r[0]["ledger"]["per_prunable_weight"].values()) for s, r in runs.items()}
    prunable = dense["ledger"]["prunable_weights"]
    first = dense_built.targets[0].parameter
    moments = sum(v.dim() > 0 for v in dense_built.optimizer.optimizer.state[first].values())  # AMSGrad: 3
    assert per["dense"] == 4 * moments * prunable
    indices = 4 * (1 - 0.8 + 0.01) * prunable if storage == "compact-indexed" else 0
    assert per["compact"] < 4 * moments * (1 - 0.8 + 0.01) * prunable + prunable / 8 + 4 * moments * 64 * 5 + indices
    assert compact["ledger"]["parameters"] == dense["ledger"]["parameters"]
    assert compact["optimizer_options"]["state_storage"] == storage


@pytest.mark.parametrize("storage", ["compact", "compact-indexed"])
def test_a_compact_run_resumed_mid_epoch_ends_like_a_dense_one(tmp_path, monkeypatch, storage):
    with one_thread():
        runner.run(_config(tmp_path, "dense", "state", "adamwspam", "dense"))
    stopped = _config(tmp_path, "compact", "state", "adamwspam", storage)
    out = Path(stopped.out)
    child = interrupt(stopped.to_dict(), out, "term", "step", 17)
    assert child.returncode == 3, child.stderr
    saved = checkpoint.load(out / "checkpoint.pt")
    assert saved.step == 17 and saved.batch > 0 and any(p is not None for p in saved.optimizer["compact_positions"]["positions"])
    resume_run(out)
    _same_results(tmp_path / "dense", out)


def test_ddp_compact_run_is_bit_identical_to_dense(tmp_path):
    args = ["--pruner", "state", "--optimizer", "adamwspam", "--epochs", "1", "--batch-size", "64", "--device", "cpu"]
    args += ["--sparsity", "0.7", "--optimizer-opt", "reset_interval=7", "--optimizer-opt", "clip_theta=50"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    for storage in ("dense", "compact"):
        command = [sys.executable, "-m", "prunekit.cli", "run", "--nproc-per-node", "2", *args]
        command += ["--optimizer-opt", f"state_storage={storage}", "--out", str(tmp_path / storage)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    summaries = {s: json.loads((tmp_path / s / "summary.json").read_text()) for s in ("dense", "compact")}
    assert summaries["compact"]["distributed"]["world_size"] == 2
    for summary in summaries.values():
        summary["distributed"].pop("samplers_per_rank")
    (tmp_path / "dense" / "summary.json").write_text(json.dumps(summaries["dense"]))
    (tmp_path / "compact" / "summary.json").write_text(json.dumps(summaries["compact"]))
    _same_results(tmp_path / "dense", tmp_path / "compact")
