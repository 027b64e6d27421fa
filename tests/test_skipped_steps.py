"""`prunekit run`: a step a GradScaler skips (inf gradients, as an fp16 overflow) is not a step."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from prunekit.core.config.settings import RunConfig
from prunekit.core.run import runner
from prunekit.core.run.building import make_schedule
from prunekit.core.rundir import checkpoint
from prunekit.testing.resume import one_thread

SKIPPED_BATCH = 3  # the 1-based training batch whose gradients become infinite


class InfGradientOnce(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by inf on the call numbered ``SKIPPED_BATCH``."""

    calls = 0

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        InfGradientOnce.calls += 1
        return grad * float("inf") if InfGradientOnce.calls == SKIPPED_BATCH else grad


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overflow: bool) -> dict[str, Any]:
    real_build = runner.build
    seen: dict[str, Any] = {}

    def build(*args: Any, **kwargs: Any) -> Any:
        built = real_build(*args, **kwargs)
        if overflow:
            built.model.register_forward_hook(lambda m, i, out: InfGradientOnce.apply(out) if m.training else out)
        seen["built"] = built
        return built

    scaler = torch.amp.GradScaler("cpu")  # the scaler `--amp` makes under fp16, here on CPU tensors
    monkeypatch.setattr(runner, "autocast_factory", lambda c, d: (contextlib.nullcontext, scaler))
    monkeypatch.setattr(runner, "build", build)
    InfGradientOnce.calls = 0
    out = tmp_path / ("overflow" if overflow else "finite")
    config = RunConfig(
        model="lenet5",
        dataset="digits",
        epochs=2,
        batch_size=256,
        sparsity=0.5,
        warmup=1,
        prune_end=8,
        frequency=1,
        device="cpu",
        sample_interval=0.05,
        out=str(out),
        quiet=True,
    )
    with one_thread():
        runner.run(config)
    summary = json.loads((out / "summary.json").read_text())
    weight = seen["built"].targets[0].parameter
    summary["optimizer_step"] = int(seen["built"].optimizer.optimizer.state[weight]["step"])
    summary["checkpoint_loop"] = checkpoint.load(out / "checkpoint.pt").loop
    summary["scale"] = scaler.get_scale()
    return summary


def test_a_skipped_scaler_step_is_no_step_and_no_mask_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    finite = _run(tmp_path, monkeypatch, overflow=False)
    overflow = _run(tmp_path, monkeypatch, overflow=True)
    batches = finite["steps"]
    assert finite["skipped_steps"] == 0 and finite["scale"] == 65536.0
    assert overflow["scale"] == 32768.0  # the scaler saw the overflow and backed off once
    assert overflow["skipped_steps"] == 1 and overflow["steps"] == batches - 1
    assert overflow["optimizer_step"] == overflow["steps"]  # AdamW's own counter agrees
    # every scheduled update (warm-up 1 to step 8) in both runs: the skipped batch shifts none past the end
    schedule = make_schedule(
        RunConfig(model="lenet5", dataset="digits", schedule=finite["schedule"]["kind"], warmup=1, prune_end=8, frequency=1),
        batches,
    )
    scheduled = sum(schedule.is_update_step(s) for s in range(batches + 1))
    assert overflow["schedule"]["mask_updates"] == finite["schedule"]["mask_updates"] == scheduled > 0
    assert overflow["achieved_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert overflow["checkpoint_loop"]["skipped_steps"] == 1  # a resumed run keeps the count
    assert overflow["checkpoint_loop"]["step"] == overflow["steps"]
