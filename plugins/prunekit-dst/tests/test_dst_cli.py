"""End to end through the installed ``prunekit`` console script: the constant schedule,
exact sparsity, every byte on the ledger, and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PRUNEKIT = shutil.which("prunekit", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(PRUNEKIT is None, reason="the prunekit console script is not installed")
PRUNABLE = 61_470


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PRUNEKIT, "run", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "pruner, options, updates, transient",
    [
        ("rigl", ["delta_t=10"], 1 + 3, 4 * PRUNABLE),  # 45 steps, end 0.75 * 45 = 34: steps 10, 20, 30
        ("set", ["delta_t=10"], 1 + 3, 0),
        ("snip", [], 1, 0),
        ("snip", ["scope=erk", "batches=3"], 1, 4 * PRUNABLE),  # the fp32 sum of w*g, held for the first 3 batches
        ("random", [], 1, 0),
    ],
)
def test_one_epoch_keeps_the_target_with_every_byte_on_the_ledger(tmp_path, pruner, options, updates, transient):
    out = tmp_path / "run"
    opts = [a for o in options for a in ("--pruner-opt", o)]
    result = _run("--pruner", pruner, *opts, "--epochs", "1", "--sparsity", "0.9", "--out", str(out), "-q")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schedule"] == {"kind": "constant", "warmup": 0, "end": 0, "frequency": 1, "mask_updates": updates}
    # every pruned weight is zero; a grown weight whose gradient stays 0 (a dead unit) is an active zero too
    assert 0.9 - 1 / PRUNABLE <= summary["achieved_sparsity"] <= 0.9 + (0.002 if pruner == "set" else 1 / PRUNABLE)
    assert summary["target_reached"] is True
    ledger = summary["ledger"]
    assert ledger["pruner_state"] == PRUNABLE  # one bool mask byte per prunable weight, nothing else kept
    assert ledger["pruner_transient"] == transient  # RigL: |dense gradient| (fp32) held on update steps
    assert summary["final_test_accuracy"] > 20.0  # learned something in one epoch (chance: 10%)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--pruner", "rigl", "--schedule", "gmp"],
            "Error: Pruner 'rigl' supports only the constant schedule, not 'gmp'; drop --schedule or use --schedule constant.",
        ),
        (
            ["--pruner", "set", "--frequency", "10"],
            "Error: --frequency does not apply to the constant schedule (the target from step 0); drop it or choose gmp, cubic or linear.",
        ),
        (
            ["--pruner", "set", "--pruner-opt", "alpha=1.5"],
            "Error: Option 'alpha' of pruner 'set' must be at most 1.0, got '1.5'.",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, message):
    out = tmp_path / "bad"
    result = _run(*args, "--epochs", "1", "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message]
    assert not out.exists()
