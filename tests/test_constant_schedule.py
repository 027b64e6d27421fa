"""The constant schedule end to end: masks set at step 0, before the first optimizer step."""

from __future__ import annotations

import torch

from prunekit import hookimpl
from prunekit.core.config.settings import RunConfig
from prunekit.core.plugins import loading as plugins
from prunekit.core.run.runner import run
from prunekit.core.sparsity.pruner import MaskPruner


class Recording(MaskPruner):
    """Magnitude pruning that records when the core asks for masks, and what exists then."""

    calls: list[tuple[int, bool]] = []

    def score(self, index, target):
        return target.parameter.detach().abs()

    def update_masks(self, sparsity, step):
        Recording.calls.append((step, any(t.parameter.grad is not None for t in self.targets)))
        super().update_masks(sparsity, step)


class RecordingPlugin:
    @staticmethod
    @hookimpl
    def register_pruners(register):
        register("recording", lambda targets: Recording(targets, scope="erk"))


def test_masks_before_the_first_step_and_never_again(tmp_path):
    Recording.calls = []
    loaded = plugins.reset({"recording": RecordingPlugin})
    torch.manual_seed(0)
    out, summary = run(
        RunConfig(pruner="recording", schedule="constant", sparsity=0.9, epochs=1, out=str(tmp_path / "r"), quiet=True),
        plugins=loaded,
    )
    assert Recording.calls == [(0, False)]  # once, at step 0, before any gradient exists
    assert summary["schedule"] == {"kind": "constant", "warmup": 0, "end": 0, "frequency": 1, "mask_updates": 1}
    assert summary["achieved_sparsity"] == 55_323 / 61_470 and summary["target_reached"]
    assert summary["ledger"]["pruner_transient"] == 0
