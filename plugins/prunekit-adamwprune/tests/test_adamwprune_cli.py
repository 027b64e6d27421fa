"""End to end through the installed ``prunekit`` console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("prunekit", path=str(Path(sys.executable).parent)) or shutil.which("prunekit")
pytestmark = pytest.mark.skipif(EXE is None, reason="the prunekit console script is not installed")


def prunekit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_adamwprune_defaults_to_state_and_reaches_target(tmp_path):
    out = tmp_path / "run"
    done = prunekit(
        "run", "--optimizer", "adamwprune", "--epochs", "1", "--sparsity", "0.6", "-q", "--out", str(out), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["optimizer"], summary["pruner"]) == ("adamwprune", "state")
    assert summary["pruner_options"] == {
        "variant": "bitter7",
        "scope": "global",
        "eps": 1e-8,
        "mask_storage": "bool",
        "structure": "unstructured",
    }
    assert summary["target_reached"] is True
    assert summary["sparsity_counts"]["prunable_zeros"] == round(0.6 * 61_470)
    assert summary["ledger"]["pruner_state"] == 61_470
    assert summary["final_test_accuracy"] > 50.0  # digits: 10 classes, chance is 10%


@pytest.mark.parametrize("variant", ["fisher", "bitter0"])
def test_state_scores_survive_a_spam_momentum_reset_on_an_update_step(tmp_path, variant):
    """Issue 9: a reset on the last update step (36 of 45) once left all-zero moments to score."""
    out = tmp_path / "run"
    done = prunekit(
        "run",
        "--optimizer",
        "adamwspam",
        "--optimizer-opt",
        "reset_interval=36",
        "--pruner",
        "state",
        "--pruner-opt",
        f"variant={variant}",
        "--sparsity",
        "0.7",
        "--epochs",
        "1",
        "-q",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schedule"]["end"] == 36 and summary["target_reached"] is True
    assert summary["sparsity_counts"]["prunable_zeros"] == round(0.7 * 61_470)
    assert summary["final_test_accuracy"] > 50.0  # was 8.4%: every weight pruned


def test_state_with_an_optimizer_without_adam_moments_exits_2(tmp_path):
    done = prunekit("run", "--optimizer", "sgd", "--pruner", "state", "--epochs", "1", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "exp_avg_sq" in lines[0] and "sgd" in lines[0], done.stderr
    assert not (tmp_path / "r" / "summary.json").exists()


@pytest.mark.parametrize("opt, word", [("variant=bitter9", "variant"), ("scope=model", "scope"), ("eps=0", "eps")])
def test_bad_pruner_option_exits_2_with_one_line(tmp_path, opt, word):
    done = prunekit(
        "run", "--optimizer", "adamwprune", "--pruner-opt", opt, "--epochs", "1", "--out", str(tmp_path / "r"), cwd=tmp_path
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in done.stderr, done.stderr
