"""DDP under torchrun with 2 gloo processes on CPU: identical masks, weights and optimizer
state on every rank for magnitude, state and movement; each test example counted once;
only rank 0 writes; `prunekit run --nproc-per-node` launches the same thing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunekit.core import rundir
from prunekit.core.distributed import Dist, ShardedBatches, eval_shard

HERE = Path(__file__).resolve().parent
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *args]


def test_shards_cover_every_test_example_once_and_training_is_split_evenly():
    import torch
    from torch.utils.data import TensorDataset

    data = TensorDataset(torch.arange(11).float(), torch.arange(11))
    shards = [eval_shard(data, Dist(rank, 3, rank)) for rank in range(3)]
    seen = sorted(int(x) for s in shards for x in s.tensors[1])
    assert seen == list(range(11))  # no padding, no example twice
    batches = [ShardedBatches(data, 2, Dist(rank, 2, rank), seed=5) for rank in range(2)]
    epoch0 = [torch.cat([labels for _, labels in b]) for b in batches]
    assert len(epoch0[0]) == len(epoch0[1]) == 6  # DistributedSampler pads the training order to equal steps
    assert set(epoch0[0].tolist()) | set(epoch0[1].tolist()) == set(range(11))
    epoch1 = [torch.cat([labels for _, labels in b]) for b in batches]
    assert not torch.equal(epoch0[0], epoch1[0])  # a new seeded order each epoch


def test_ranks_stay_identical_for_magnitude_state_and_movement(tmp_path):
    pytest.importorskip("prunekit_adamwprune")
    pytest.importorskip("prunekit_movement")
    done = subprocess.run(
        _torchrun(str(HERE / "ddp_ranks.py"), str(tmp_path), "magnitude", "state", "movement"),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for pruner in ("magnitude", "state", "movement"):
        a, b = ranks[0]["runs"][pruner], ranks[1]["runs"][pruner]
        assert len(a["epochs"]) == 2 and a["epochs"] == b["epochs"], pruner  # masks, weights, optimizer state
        assert a["sparsity"] == pytest.approx(0.7, abs=0.005)
        # sharded evaluation, reduced: the same accuracy as one process scoring all 359 examples once
        assert a["summary_accuracy"] == a["full_accuracy"] == b["summary_accuracy"]
        assert a["shard_examples"] + b["shard_examples"] == a["test_examples"] == 359
        outcomes = rundir.read_outcomes(tmp_path / pruner)  # per example, in the test split's own order
        assert outcomes.correct.tolist() == a["full_correct"] == b["full_correct"]
        assert a["train_batches"] == b["train_batches"] == 12  # 719 examples per rank, 64 per batch
        run_dir = tmp_path / pruner
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["distributed"]["world_size"] == 2 and summary["distributed"]["global_batch_size"] == 128
        assert summary["distributed"]["lr_scaled"] is False and summary["lr"] == pytest.approx(1e-3)
        per_rank = summary["distributed"]["samplers_per_rank"]
        assert len(per_rank) == 2
        peak = summary["samplers"]["process"]["figures"]["rss_bytes"]["peak"]
        assert peak == max(r["process"]["figures"]["rss_bytes"]["peak"] for r in per_rank)
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2  # written once, by rank 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["magnitude", "movement", "rank0.json", "rank1.json", "state"]


def test_nproc_per_node_shortcut_launches_torchrun(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "prunekit.cli",
            "run",
            "--nproc-per-node",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Run complete") == 1  # rank 0 reports
    summary = json.loads((out / "summary.json").read_text())
    assert summary["distributed"]["world_size"] == 2 and summary["distributed"]["backend"] == "gloo"
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "prunekit.cli",
            "run",
            "--nproc-per-node",
            "2",
            "--sparsity",
            "1.5",
            "--out",
            str(tmp_path / "bad"),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
