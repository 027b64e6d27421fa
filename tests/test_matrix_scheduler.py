"""Scheduler pieces without training: job slots (CPU threads, one GPU each), failure reasons, progress lines."""

from __future__ import annotations

import io

import pytest

from prunekit.core.config.settings import RunConfig
from prunekit.errors import UsageError
from prunekit.matrix import slots as slots_module
from prunekit.matrix.progress import Active, MatrixProgress
from prunekit.matrix.run_results import failure_reason
from prunekit.matrix.slots import make_slots
from prunekit.matrix.store import MatrixLock
from prunekit.matrix.worker import FAILURE_MARK


def test_cpu_jobs_split_the_cores_fairly(monkeypatch):
    monkeypatch.setattr(slots_module, "available_cores", lambda: 8)
    monkeypatch.setattr(slots_module, "_visible_devices", lambda: [])
    slots = make_slots(3, [RunConfig(device="auto")])
    assert [env["PRUNEKIT_MATRIX_THREADS"] for env in slots.envs] == ["2", "2", "2"]
    assert all(env["OMP_NUM_THREADS"] == "2" and "CUDA_VISIBLE_DEVICES" not in env for env in slots.envs)
    assert [e["OMP_NUM_THREADS"] for e in make_slots(16, [RunConfig()]).envs] == ["1"] * 16
    assert make_slots(1, [RunConfig()]).envs == [{"PRUNEKIT_MATRIX_THREADS": "8", "OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8"}]
    assert [e["OMP_NUM_THREADS"] for e in make_slots(2, [RunConfig()], threads=1).envs] == ["1", "1"]


def test_gpu_jobs_get_one_visible_device_each_capped_at_the_device_count(monkeypatch):
    monkeypatch.setattr(slots_module, "available_cores", lambda: 16)
    monkeypatch.setattr(slots_module, "_visible_devices", lambda: ["2", "5"])
    slots = make_slots(4, [RunConfig(device="auto"), RunConfig(device="cuda")])
    assert [env["CUDA_VISIBLE_DEVICES"] for env in slots.envs] == ["2", "5"]
    assert all(env["PRUNEKIT_MATRIX_THREADS"] == "8" for env in slots.envs)
    assert "capped at 2 visible GPUs" in slots.description
    # runs pinned to the CPU, or to a device index of their own, are not re-mapped
    for device in ("cpu", "cuda:1"):
        assert all("CUDA_VISIBLE_DEVICES" not in env for env in make_slots(2, [RunConfig(device=device)]).envs)


def test_failure_reasons():
    tail = ["epoch 1: ...", "Traceback (most recent call last):", f"{FAILURE_MARK}RuntimeError: boom"]
    assert failure_reason(1, tail) == ("RuntimeError: boom", None)
    reason, name = failure_reason(-9, tail)
    assert name == "SIGKILL" and reason.startswith("killed by SIGKILL") and "out-of-memory" in reason
    assert failure_reason(-15, []) == ("killed by SIGTERM", "SIGTERM")
    assert failure_reason(3, ["Segmentation fault"]) == ("exited with status 3: Segmentation fault", None)
    assert failure_reason(0, []) == ("the run exited without writing summary.json", None)


def test_plain_progress_lines_count_done_failed_and_show_epochs():
    stream = io.StringIO()
    with MatrixProgress(3, done=1, stream=stream) as progress:
        run = Active("run-a", epochs=4)
        progress.started(run)
        run.epoch, run.accuracy = 2, 91.5
        progress.update(run)
        progress.update(run)  # no new epoch: no new line
        progress.finished(run, False, "killed by SIGKILL")
        assert (progress.done, progress.failed, progress.remaining) == (1, 1, 1)
    lines = stream.getvalue().splitlines()
    assert lines == ["[1/3] start run-a", "[1/3]   run-a: epoch 2/4, test acc 91.50%", "[2/3] FAILED run-a: killed by SIGKILL"]


def test_one_matrix_process_per_directory(tmp_path):
    with MatrixLock(tmp_path):
        with pytest.raises(UsageError, match="in use by another prunekit matrix process"):
            with MatrixLock(tmp_path):
                pass
    with MatrixLock(tmp_path):  # released on exit (and by the kernel if the process dies)
        pass
