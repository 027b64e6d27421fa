"""Exactness: a run killed (SIGKILL) or stopped (SIGTERM) and resumed ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from prunekit.core import checkpoint
from prunekit.core.config import RunConfig
from prunekit.core.resume import resume
from prunekit.core.runner import run

# `prunekit run --config CONFIG --out DIR` in a child process that kills itself with SIGKILL (or asks
# itself to stop with SIGTERM) at a chosen point: after an epoch (and its checkpoint), or after a step.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from prunekit import cli, progress
    config, out, how, when, at = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    sig = signal.SIGKILL if how == "kill" else signal.SIGTERM
    step, epoch = progress.RunProgress.step, progress.RunProgress.epoch
    def on_step(self, n, total):
        step(self, n, total)
        if when == "step" and n == at:
            os.kill(os.getpid(), sig)
    def on_epoch(self, record):
        epoch(self, record)
        if when == "epoch" and record["epoch"] == at:
            os.kill(os.getpid(), sig)
    progress.RunProgress.step, progress.RunProgress.epoch = on_step, on_epoch
    cli.main(["run", "--config", config, "--out", out])
""")

TIMING = {
    "wall_time_s",
    "train_time_s",
    "eval_time_s",
    "mean_step_time_s",
    "samplers",
    "environment",
    "run_dir",
    "resumed_at_epochs",
}
CASES = {
    # pruner, optimizer, extra settings, how the first process ends
    "magnitude": dict(pruner="magnitude", optimizer="adamw", stop=("kill", "epoch", 2)),
    "state": dict(pruner="state", optimizer="adamwprune", stop=("kill", "epoch", 2)),
    "movement": dict(pruner="movement", optimizer="adamw", stop=("kill", "epoch", 3), checkpoint_every=2),
    "adamwspam-resets": dict(
        pruner="magnitude",
        optimizer="adamwspam",
        optimizer_opts={"reset_interval": 7, "reset_warmup": 3, "min_history": 3, "spike_z": 1.0, "clip_theta": 50.0},
        stop=("term", "step", 17),
    ),
}


def config(tmp_path: Path, name: str, case: dict) -> RunConfig:
    extra = {k: v for k, v in case.items() if k != "stop"}
    return RunConfig(
        model="lenet5",
        dataset="digits",
        epochs=4,
        batch_size=128,
        sparsity=0.8,
        sample_interval=0.05,
        device="cpu",
        out=str(tmp_path / name),
        quiet=True,
        **extra,
    )


def results(out: Path) -> tuple[dict, list[dict], dict]:
    summary = json.loads((out / "summary.json").read_text())
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for record in metrics:
        record.pop("epoch_time_s")
    state = checkpoint.load(out / "checkpoint.pt")
    return {k: v for k, v in summary.items() if k not in TIMING}, metrics, state


@pytest.mark.parametrize("name", list(CASES))
def test_resumed_run_is_bit_identical(tmp_path: Path, name: str):
    case = CASES[name]
    if case["pruner"] in ("state", "movement"):
        pytest.importorskip(f"prunekit_{'adamwprune' if case['pruner'] == 'state' else 'movement'}")
    # Bit-identity holds for one thread count: the child runs with OMP_NUM_THREADS=1, so the
    # in-process reference and resume run with one thread too (conftest restores the count).
    torch.set_num_threads(1)
    reference = config(tmp_path, "reference", case)
    run(reference)

    stopped = config(tmp_path, "stopped", case)
    how, when, at = case["stop"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    settings = tmp_path / "run.yaml"
    settings.write_text(yaml.safe_dump({k: v for k, v in stopped.to_dict().items() if k != "out"}))
    out = Path(stopped.out)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(settings), str(out), how, when, str(at)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    saved = checkpoint.load(out / "checkpoint.pt")
    if how == "kill":
        assert child.returncode == -signal.SIGKILL
    else:
        assert child.returncode == 3 and saved.batch > 0, child.stderr  # stopped mid-epoch, after its step
        assert saved.step == at and child.stderr.strip().splitlines()[-1].endswith(f"prunekit run --resume {out}")
    assert not (out / "summary.json").exists()
    every = case.get("checkpoint_every", 1)
    expected_epoch = at - at % every if when == "epoch" else saved.epoch
    assert saved.epoch == expected_epoch and 0 < saved.step < 4 * 12
    settings = yaml.safe_load((out / "config.yaml").read_text())
    assert settings["warmup"] < saved.step < settings["prune_end"]  # stopped mid-ramp

    resume(out)
    summary, metrics, final = results(out)
    ref_summary, ref_metrics, ref_final = results(Path(reference.out))
    assert metrics == ref_metrics  # one line per epoch, no duplicates, every number identical
    assert summary == ref_summary  # accuracies, losses, sparsities, ledger, schedule
    assert (out / "test_correct.bin").read_bytes() == (Path(reference.out) / "test_correct.bin").read_bytes()
    assert json.loads((out / "summary.json").read_text())["resumed_at_epochs"] == [saved.epoch]
    for key, value in ref_final.model.items():
        assert torch.equal(final.model[key], value), key
    for key in ("masks", "scores"):
        for a, b in zip(final.pruner.get(key, []), ref_final.pruner.get(key, [])):
            assert (a is None and b is None) or torch.equal(a, b), key
    assert any(m is not None for m in final.pruner["masks"])
