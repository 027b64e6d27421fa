"""End to end through the installed ``prunekit`` console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PRUNEKIT = shutil.which("prunekit", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(PRUNEKIT is None, reason="the prunekit console script is not installed")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PRUNEKIT, "run", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("pruner", ["movement", "movement-w0"])
def test_one_epoch_on_digits_reaches_the_target_with_every_byte_on_the_ledger(tmp_path, pruner):
    out = tmp_path / "run"
    result = _run("--pruner", pruner, "--epochs", "1", "--sparsity", "0.8", "--sampler", "process", "--out", str(out), "-q")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pruner"] == pruner
    assert summary["target_sparsity"] == 0.8
    assert summary["achieved_sparsity"] == pytest.approx(0.8, abs=1e-4)
    assert summary["target_reached"] is True
    ledger = summary["ledger"]
    assert ledger["prunable_weights"] == 61_470
    assert ledger["pruner_state"] == 5 * 61_470
    assert ledger["pruner_state_bytes_per_prunable_weight"] == 5.0
    assert summary["final_test_accuracy"] > 20.0  # learned something in one epoch (chance: 10%)


def test_a_bad_pruner_option_is_one_line_and_exit_status_2(tmp_path):
    result = _run("--pruner", "movement", "--pruner-opt", "lr_score=0", "--epochs", "1", "--out", str(tmp_path / "bad"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["Error: Option 'lr_score' of pruner 'movement' must be greater than 0.0, got '0'."]
