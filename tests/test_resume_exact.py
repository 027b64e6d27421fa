"""Exactness: a run killed (SIGKILL) or stopped (SIGTERM) and resumed ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
import yaml

from prunekit.core.config.settings import RunConfig
from prunekit.core.run.runner import run
from prunekit.core.rundir import checkpoint
from prunekit.testing.resume import comparable, interrupt, one_thread, resume_run

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


@pytest.mark.parametrize("name", list(CASES))
def test_resumed_run_is_bit_identical(tmp_path: Path, name: str):
    case = CASES[name]
    if case["pruner"] in ("state", "movement"):
        pytest.importorskip(f"prunekit_{'adamwprune' if case['pruner'] == 'state' else 'movement'}")
    # Bit-identity holds for one thread count: the child runs with OMP_NUM_THREADS=1, so the
    # in-process reference and resume run with one thread too.
    reference = config(tmp_path, "reference", case)
    with one_thread():
        run(reference)

    stopped = config(tmp_path, "stopped", case)
    how, when, at = case["stop"]
    out = Path(stopped.out)
    child = interrupt(stopped.to_dict(), out, how, when, at)
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

    resume_run(out)
    summary, metrics, final = comparable(out)
    ref_summary, ref_metrics, ref_final = comparable(Path(reference.out))
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
