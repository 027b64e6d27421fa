"""`prunekit run --resume`: what it refuses, with one line and exit status 2, touching nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prunekit.core.rundir import checkpoint

FAST = ("--epochs", "2", "--batch-size", "256", "--quiet")


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A finished 2-epoch run with its summary removed: a run stopped after its last checkpoint."""
    from prunekit.cli import main

    out = tmp_path_factory.mktemp("resume") / "run"
    with pytest.raises(SystemExit) as info:
        main(["run", *FAST, "--checkpoint-every", "1", "--out", str(out)])
    assert info.value.code == 0
    return out


def fresh_copy(stopped: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in snapshot(stopped).items():
        if name not in ("summary.json", "test_correct.bin"):
            (copy / name).write_bytes(data)
    return copy


def test_resume_of_a_complete_run_is_refused(stopped, run_cli):
    before = snapshot(stopped)
    result = run_cli("run", "--resume", stopped)
    assert result.code == 2 and "complete (summary.json exists)" in result.err
    assert snapshot(stopped) == before


def test_other_run_options_with_resume_are_refused(stopped, tmp_path, run_cli):
    run_dir = fresh_copy(stopped, tmp_path)
    before = snapshot(run_dir)
    result = run_cli("run", "--resume", run_dir, "--epochs", "5", "--lr", "0.1")
    assert result.code == 2 and result.err.count("\n") == 1
    assert "drop --lr, --epochs" in result.err or "drop --epochs, --lr" in result.err
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("damage", ["truncated", "missing", "other model", "other major version"])
def test_unusable_checkpoint_is_one_line_and_touches_nothing(stopped, tmp_path, run_cli, damage):
    run_dir = fresh_copy(stopped, tmp_path)
    path = run_dir / "checkpoint.pt"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "missing":
        path.unlink()
    else:
        saved = checkpoint.load(path)
        if damage == "other model":
            saved.identity["shapes"]["conv1.weight"] = [16, 1, 5, 5]
        else:
            saved.identity["prunekit"] = "7.0.0"
        checkpoint.save(path, saved)
    before = snapshot(run_dir)
    result = run_cli("run", "--resume", run_dir)
    assert result.code == 2, result.err
    assert result.err.startswith("Error: ") and result.err.count("\n") == 1 and "Traceback" not in result.err
    expected = {
        "truncated": "truncated or corrupt",
        "missing": "no checkpoint",
        "other model": "another model",
        "other major version": "prunekit 7.0.0",
    }[damage]
    assert expected in result.err
    assert snapshot(run_dir) == before


def test_resume_after_the_last_checkpoint_writes_the_summary(stopped, tmp_path, run_cli):
    run_dir = fresh_copy(stopped, tmp_path)
    result = run_cli("run", "--resume", run_dir, "--quiet")
    assert result.code == 0, result.err
    summary = json.loads((run_dir / "summary.json").read_text())
    reference = json.loads((stopped / "summary.json").read_text())
    assert summary["resumed_at_epochs"] == [2] and reference["resumed_at_epochs"] == []
    assert summary["final_test_accuracy"] == reference["final_test_accuracy"]
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    assert (run_dir / "test_correct.bin").read_bytes() == (stopped / "test_correct.bin").read_bytes()


def test_checkpoint_every_zero_writes_none(tmp_path, run_cli):
    out = tmp_path / "run"
    assert run_cli("run", *FAST, "--checkpoint-every", "0", "--out", out).code == 0
    assert not (out / "checkpoint.pt").exists()
    result = run_cli("run", *FAST, "--checkpoint-every", "-1", "--out", tmp_path / "bad")
    assert result.code == 2 and "Checkpoint interval" in result.err and not (tmp_path / "bad").exists()


def test_resume_with_another_thread_count_warns_and_records_it(stopped, tmp_path, run_cli):
    """Another thread count changes float sums: the run continues, said so in stderr and the summary."""
    run_dir = fresh_copy(stopped, tmp_path)
    written_with = checkpoint.load(run_dir / "checkpoint.pt").identity["torch_threads"]
    assert written_with == torch.get_num_threads()
    torch.set_num_threads(written_with + 1)  # conftest restores the count
    result = run_cli("run", "--resume", run_dir, "--quiet")
    assert result.code == 0, result.err
    expected = f"torch_threads {written_with} and the run resumes with torch_threads {written_with + 1}"
    assert expected in result.err and "not bit-identical" in result.err
    assert any(expected in w for w in json.loads((run_dir / "summary.json").read_text())["warnings"])


def test_resume_with_the_same_thread_count_says_nothing(stopped, tmp_path, run_cli):
    run_dir = fresh_copy(stopped, tmp_path)
    result = run_cli("run", "--resume", run_dir, "--quiet")
    assert result.code == 0 and "bit-identical" not in result.err
    assert not any("torch_threads" in w for w in json.loads((run_dir / "summary.json").read_text())["warnings"])


def test_a_constant_schedule_run_resumes(tmp_path, run_cli):
    # config.yaml records the constant schedule's warm-up 0, end 0 and frequency 1, which the
    # constant schedule refuses when given: resume must not read them back as given settings
    out = tmp_path / "run"
    assert run_cli("run", *FAST, "--schedule", "constant", "--sparsity", "0.9", "--out", out).code == 0
    (out / "summary.json").unlink()
    result = run_cli("run", "--resume", out, "--quiet")
    assert result.code == 0, result.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_at_epochs"] == [2] and summary["schedule"]["mask_updates"] == 1
