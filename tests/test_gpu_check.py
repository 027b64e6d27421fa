"""benchmarks/gpu_check.py on a machine without a GPU: it says why and exits 0; its items and JSON shape
are checked with the CUDA parts replaced by the CPU (real ``prunekit run`` processes)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
assert spec is not None and spec.loader is not None
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)
harness = sys.modules["_gpu_harness"]

TINY = ["--model", "lenet5", "--dataset", "digits", "--epochs", "1", "--batch-size", "128", "--sparsity", "0.5",
        "--seed", "0", "--checkpoint-every", "0"]  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run for real")
def test_without_cuda_it_says_why_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert "no CUDA device" in document["skipped"]
    assert document["items"] == [] and document["counts"] == {"ok": 0, "failed": 0, "skipped": 0}
    assert document["environment"]["cuda_available"] is False
    assert done.stderr.strip().startswith("gpu_check: no CUDA device")


def test_one_failure_never_hides_the_rest(tmp_path: Path) -> None:
    def ok(ctx):
        return {"x": 1}

    def broken(ctx):
        raise RuntimeError("CUDA error: an illegal memory access\nsecond line")

    def absent(ctx):
        raise harness.Skip("not built yet")

    ctx = harness.Context("cpu", ["process"], tmp_path)
    items = harness.run_items([("a", broken), ("b", ok), ("c", absent)], ctx)
    assert [i["status"] for i in items] == ["failed", "ok", "skipped"]
    assert items[0]["error"] == "RuntimeError: CUDA error: an illegal memory access"
    assert items[1]["figures"] == {"x": 1} and items[2]["reason"] == "not built yet"
    document = harness.report(items, {"gpu": "fake"})
    assert document["counts"] == {"ok": 1, "failed": 1, "skipped": 1}
    json.dumps(document)  # one JSON document

    spent = harness.Context("cpu", ["process"], tmp_path, budget_s=0.0)
    assert harness.run_items([("late", ok)], spent)[0] == {"name": "late", "status": "skipped",
                                                           "reason": "time budget of 0 s spent", "seconds": 0.0}  # fmt: skip


def test_a_pruner_item_runs_prunekit_twice_and_compares(tmp_path: Path) -> None:
    """The real item with the GPU replaced by the CPU: the same seed gives the same run, so every invariant holds."""
    ctx = harness.Context("cpu", ["process"], tmp_path, options=TINY)
    result = gpu_check.pruner_item("magnitude")(ctx)
    device = result["device"]
    assert (
        device["target_sparsity"] == 0.5
        and device["target_reached"]
        and device["achieved_sparsity"] == pytest.approx(0.5, abs=1e-4)
    )
    assert device["ledger_total_bytes"] > 0 and device["steps"] > 0 and device["data_placement"] == "device"
    assert "process" in device["measured"] and device["measured"]["process"]["errors"] == 0
    assert result["compared"] == {"accuracy_minus_cpu": 0.0, "accuracy_within_5_points": True}


def test_a_broken_invariant_is_a_failure() -> None:
    run = {
        "target_reached": True,
        "target_sparsity": 0.7,
        "achieved_sparsity": 0.7,
        "ledger_total_bytes": 10,
        "final_test_accuracy": 50.0,
    }
    with pytest.raises(AssertionError, match="ledger 10 B here, 12 B on CPU"):
        gpu_check.same_as_cpu(run, run | {"ledger_total_bytes": 12})
    with pytest.raises(AssertionError, match="achieved sparsity"):
        gpu_check.same_as_cpu(run, run | {"achieved_sparsity": 0.69})
    assert gpu_check.same_as_cpu(run, run | {"final_test_accuracy": 44.0})["accuracy_within_5_points"] is False


def test_every_cuda_path_has_an_item() -> None:
    names = [name for name, _ in gpu_check.items()]
    assert names[:5] == [f"pruner/{p}" for p in ("none", "magnitude", "state", "movement", "rigl")]
    for wanted in (
        "amp/bf16",
        "amp/fp16-overflow",
        "data/device",
        "data/pinned-host",
        "compile",
        "inference/2:4",
        "compact-state",
        "ddp/nccl",
    ):
        assert wanted in names
