"""Resume with the constant schedule: a run killed after epoch 1 (SIGKILL) or stopped mid-epoch
(SIGTERM) and resumed ends bit-identical to an uninterrupted one, and the step-0 mask update (SNIP's
selection) is neither redone nor skipped.

LeNet-5 on digits, 3 epochs of 12 steps. RigL/SET update the topology every 4 steps up to step 18:
the kill after epoch 1 (step 12) leaves an update to do, the stop at step 24 comes after the last one
(the ledger's transient bytes must survive the checkpoint). SNIP sums |w*g| over 3 batches: the stop
at step 2 comes mid-sum (the running sum is in the checkpoint)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from prunekit.testing.resume import comparable, interrupt, one_thread, resume_run
from prunekit.testing.runs import short_run

PRUNABLE = 61_470
SETTINGS = {
    "model": "lenet5",
    "dataset": "digits",
    "dataset_opts": {},
    "epochs": 3,
    "batch_size": 128,
    "sparsity": 0.9,
    "schedule": "constant",
    "sample_interval": 0.1,
    "device": "cpu",
    "quiet": True,
}
DYNAMIC = {"delta_t": 4, "end_fraction": 0.5}
PRUNERS = {"rigl": DYNAMIC, "set": DYNAMIC, "snip": {"batches": 3}}
CASES = [
    (pruner, stop)
    for pruner, term_at in (("rigl", 24), ("set", 24), ("snip", 2))
    for stop in (("kill", "epoch", 1), ("term", "step", term_at))
]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """One uninterrupted run per pruner, made on first use."""
    made: dict[str, Path] = {}

    def get(pruner: str) -> Path:
        if pruner not in made:
            out = tmp_path_factory.mktemp("reference") / pruner
            with one_thread():
                short_run(out, **SETTINGS, pruner=pruner, pruner_opts=PRUNERS[pruner])
            made[pruner] = out
        return made[pruner]

    return get


@pytest.mark.parametrize("pruner, stop", CASES, ids=[f"{p}-{s[0]}-{s[1]}{s[2]}" for p, s in CASES])
def test_resumed_constant_sparsity_run_is_bit_identical(tmp_path, references, pruner, stop):
    reference = references(pruner)
    out = tmp_path / "stopped"
    how, when, at = stop
    child = interrupt(SETTINGS | {"pruner": pruner, "pruner_opts": PRUNERS[pruner]}, out, how, when, at)
    saved = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    if how == "kill":
        assert child.returncode == -signal.SIGKILL, child.stderr
        assert (saved["epoch"], saved["step"], saved["batch"]) == (1, 12, 0)
    else:
        assert child.returncode == 3, child.stderr
        assert saved["step"] == at and saved["batch"] == at % 12
    assert not (out / "summary.json").exists()
    if pruner == "snip" and at == 2:  # mid-sum: nothing chosen yet, the sum of 2 batches kept
        assert saved["pruner"]["masks"] == [None] * 5 and saved["pruner"]["scored"] == 2
        assert saved["pruner"]["pending"] == pytest.approx(0.9)

    resume_run(out)
    summary, metrics, final = comparable(out)
    ref_summary, ref_metrics, ref_final = comparable(reference)
    assert metrics == ref_metrics
    assert summary == ref_summary  # accuracies, sparsities, the ledger, mask_updates (step 0 once)
    assert summary["schedule"]["mask_updates"] == (1 + 18 // 4 if pruner != "snip" else 1)
    assert summary["ledger"]["pruner_state"] == PRUNABLE
    assert summary["ledger"]["pruner_transient"] == (0 if pruner == "set" else 4 * PRUNABLE)
    assert json.loads((out / "summary.json").read_text())["resumed_at_epochs"] == [saved["epoch"]]
    for key, value in ref_final.model.items():
        assert torch.equal(final.model[key], value), key
    for a, b in zip(final.pruner["masks"], ref_final.pruner["masks"], strict=True):
        assert torch.equal(a, b)
    assert final.pruner.get("topology_updates") == ref_final.pruner.get("topology_updates")
