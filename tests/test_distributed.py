"""DDP under torchrun with 2 gloo processes on CPU: identical masks, weights and optimizer
state on every rank for magnitude, state and movement; each test example counted once;
only rank 0 writes; `prunekit run --nproc-per-node` launches the same thing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from prunekit.core.data.sharded import ShardedBatches, eval_shard
from prunekit.core.distributed.ddp import Dist
from prunekit.core.rundir import layout as rundir
from prunekit.testing.resume import comparable

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


# `prunekit run ARGS` under torchrun, where rank 1 alone gets SIGTERM after step AT.
STOP_ONE_RANK = """
import os, signal, sys
from prunekit import cli, progress
at, step = int(sys.argv[1]), progress.RunProgress.step
def on_step(self, n, total):
    step(self, n, total)
    if n == at and os.environ["RANK"] == "1":
        os.kill(os.getpid(), signal.SIGTERM)
progress.RunProgress.step = on_step
cli.main(["run", *sys.argv[2:]])
"""


def _results(out: Path) -> tuple[dict, list[dict], object]:
    """What must match between two DDP runs (prunekit.testing.resume.comparable), per-rank memory aside."""
    summary, metrics, final = comparable(out)
    summary["distributed"].pop("samplers_per_rank")  # memory samples
    return summary, metrics, final


def test_ddp_run_stopped_on_one_rank_resumes_identical(tmp_path):
    import torch

    from prunekit.core.rundir import checkpoint

    args = ["--epochs", "2", "--batch-size", "64", "--device", "cpu", "--sparsity", "0.7", "--sample-interval", "0.2"]
    ref, out = tmp_path / "reference", tmp_path / "stopped"
    cli = [sys.executable, "-m", "prunekit.cli", "run"]
    done = subprocess.run(
        [*cli, "--nproc-per-node", "2", *args, "--out", str(ref)], capture_output=True, text=True, env=ENV, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]

    script = tmp_path / "stop_one_rank.py"
    script.write_text(STOP_ONE_RANK)
    stopped = subprocess.run(
        _torchrun(str(script), "17", *args, "--out", str(out)), capture_output=True, text=True, env=ENV, timeout=600
    )
    assert stopped.returncode != 0 and not (out / "summary.json").exists()
    # both ranks stopped after step 17 (epoch 2, batch 5 of 12); rank 0, never signalled, wrote the checkpoint
    assert "Run stopped by a stop request on another rank after step 17 (1 epoch(s) complete)" in stopped.stderr, stopped.stderr[
        -3000:
    ]
    saved = checkpoint.load(out / "checkpoint.pt")
    assert (saved.epoch, saved.step, saved.batch, len(saved.ranks)) == (1, 17, 5, 2)

    resumed = subprocess.run(
        [*cli, "--nproc-per-node", "2", "--resume", str(out)], capture_output=True, text=True, env=ENV, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary, metrics, final = _results(out)
    ref_summary, ref_metrics, ref_final = _results(ref)
    assert metrics == ref_metrics  # each epoch once, every number identical (the partial epoch's sums too)
    assert summary == ref_summary
    assert rundir.read_summary(out)["resumed_at_epochs"] == [1] and rundir.read_summary(ref)["resumed_at_epochs"] == []
    assert (out / "test_correct.bin").read_bytes() == (ref / "test_correct.bin").read_bytes()
    for key, value in ref_final.model.items():
        assert torch.equal(final.model[key], value), key
    for a, b in zip(final.pruner["masks"], ref_final.pruner["masks"]):
        assert (a is None and b is None) or torch.equal(a, b)


def test_each_rank_resumes_its_own_state_from_a_checkpoint_of_as_many_ranks():
    import torch

    from prunekit.core.distributed.rank_state import own_view
    from prunekit.core.rundir import checkpoint

    ranks = [
        {"rng": {"rank": r}, "loop": {"seen": 10 + r, "loss_sum": torch.tensor(float(r))}, "samplers": {"r": r}} for r in range(2)
    ]
    saved = checkpoint.Checkpoint({}, 1, 17, 5, {}, {}, {}, None, ranks[0]["rng"], loop={"seen": 10, "wall_s": 3.0}, ranks=ranks)
    own = own_view(saved, Dist(1, 2, 1), Path("run/checkpoint.pt"))
    assert (own.rng, own.samplers, own.loop["seen"], own.loop["wall_s"]) == ({"rank": 1}, {"r": 1}, 11, 3.0)
    assert own_view(saved, Dist(0, 2, 0), Path("c")).loop["seen"] == 10
    for world in (1, 4):
        message = (
            f"run/checkpoint.pt was written by a run on 2 process(es) and this one has {world}: resume it with --nproc-per-node 2"
        )
        with pytest.raises(checkpoint.CheckpointError, match=re.escape(message)):
            own_view(saved, Dist(0, world, 0), Path("run/checkpoint.pt"))
    single = checkpoint.Checkpoint({}, 1, 17, 5, {}, {}, {}, None, {})
    assert own_view(single, Dist(), Path("c")) is single
    with pytest.raises(
        checkpoint.CheckpointError, match=re.escape("on 1 process(es) and this one has 2: resume it with one process")
    ):
        own_view(single, Dist(0, 2, 0), Path("c"))


def test_sharded_batches_resume_at_their_epoch_and_batch():
    import torch
    from torch.utils.data import TensorDataset

    from prunekit.core.data.order import data_generators, skip_batches
    from prunekit.core.data.sharded import train_loader

    data = TensorDataset(torch.arange(40).float(), torch.arange(40))
    plain = list(TensorDataset(torch.arange(40).float(), torch.arange(40)))  # map-style: a DataLoader over EpochSampler
    for make in (lambda: train_loader(data, 3, Dist(1, 2, 1), seed=7), lambda: train_loader(plain, 3, Dist(1, 2, 1), seed=7)):
        first, resumed = make(), make()
        epochs = [[labels.tolist() for _, labels in first] for _ in range(2)]
        ((name, order),) = data_generators(first).items()
        assert name == "order" and order.get_state().tolist() == [2]
        data_generators(resumed)["order"].set_state(torch.tensor([1]))  # the state when epoch 2 began
        skip_batches(resumed, 2)
        assert [labels.tolist() for _, labels in resumed] == epochs[1][2:]  # epoch 2's order, 2 batches done
        assert [labels.tolist() for _, labels in resumed] != epochs[1]  # and the next epoch is a new order
