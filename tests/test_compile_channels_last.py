"""`prunekit run --channels-last` and `--compile`, every bundled pruner: the masks of the contiguous, eager run within float tolerance.

Convolutions in another memory format (or compiled kernels) sum in another order, so weights
differ by float rounding (about 1e-4 after a few steps on LeNet-5) and a weight at a mask
threshold may fall on the other side: masks agree on all but ``FLIPS`` of the weights, and
the achieved sparsity (exact zero counts) is equal. Mask operations on channels_last weights
are exact on the same weights (tests/test_channels_last.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from built_runs import run_keeping_parts
from click.testing import CliRunner

from prunekit import hookimpl
from prunekit.cli import cli, main
from prunekit.core.config.settings import RunConfig
from prunekit.core.plugins import loading as plugins
from prunekit.core.sparsity.pruner import MaskPruner
from prunekit.testing.resume import one_thread

FLIPS = 5e-3  # the fraction of weights whose mask may differ (measured: up to 0.13%, state); a layout bug flips ~40% of a layer

# every bundled mask pruner (plugins skipped where not installed) with a schedule it takes
PRUNERS = {
    "magnitude": {},
    "random-scores": {},
    "state": {"optimizer": "adamwprune"},
    "movement": {"schedule": "gmp"},
    "movement-w0": {"schedule": "gmp"},
    "random": {"schedule": "constant"},
    "snip": {"schedule": "constant"},
    "rigl": {"schedule": "constant", "pruner_opts": {"delta_t": 2}},
    "set": {"schedule": "constant", "pruner_opts": {"delta_t": 2}},
}


def _same_masks(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    differ = sum(int((x != y).sum()) for x, y in zip(a, b))
    return differ <= FLIPS * sum(x.numel() for x in a)


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, pruner: str, **settings: Any) -> dict[str, Any]:
    extra = dict(PRUNERS[pruner])
    if extra.get("schedule") != "constant":
        extra.update(warmup=1, prune_end=6, frequency=1)
    config = RunConfig(
        model="lenet5",
        dataset="digits",
        epochs=1,
        batch_size=128,
        sparsity=0.7,
        pruner=pruner,
        device="cpu",
        sample_interval=0.05,
        out=str(tmp_path / name),
        quiet=True,
        **extra,
        **settings,
    )
    with one_thread():
        _, built = run_keeping_parts(monkeypatch, config)
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    summary["masks"] = [t.parameter.detach() != 0 for t in built.targets]
    summary["weights"] = [t.parameter.detach().clone() for t in built.targets]
    return summary


_EAGER: dict[str, dict[str, Any]] = {}  # pruner -> its eager, contiguous run (both tests compare against it)


def _eager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pruner: str) -> dict[str, Any]:
    plugin = {"state": "prunekit_adamwprune", "rigl": "prunekit_dst", "set": "prunekit_dst"}.get(pruner, "prunekit_movement")
    if pruner in ("state", "movement", "movement-w0", "rigl", "set"):
        pytest.importorskip(plugin)
    if pruner not in _EAGER:
        _EAGER[pruner] = _run(tmp_path, monkeypatch, "contiguous", pruner)
    return _EAGER[pruner]


@pytest.mark.parametrize("pruner", list(PRUNERS))
def test_channels_last_masks_equal_contiguous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pruner: str) -> None:
    contiguous = _eager(tmp_path, monkeypatch, pruner)
    last = _run(tmp_path, monkeypatch, "channels_last", pruner, channels_last=True)
    assert last["channels_last"] and not contiguous["channels_last"]
    assert [tuple(m.shape) for m in last["masks"]] == [tuple(m.shape) for m in contiguous["masks"]]
    assert _same_masks(last["masks"], contiguous["masks"])
    assert last["sparsity_counts"]["prunable_zeros"] == contiguous["sparsity_counts"]["prunable_zeros"]


@pytest.mark.parametrize("pruner", list(PRUNERS))
def test_compiled_run_masks_equal_eager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pruner: str) -> None:
    eager = _eager(tmp_path, monkeypatch, pruner)
    torch._dynamo.reset()  # each pruner's run compiles afresh (inductor's on-disk cache still saves the codegen) ...
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):  # ... and never falls back to eager
        compiled = _run(tmp_path, monkeypatch, "compiled", pruner, compile=True)
    assert compiled["compile"] and not eager["compile"]
    assert compiled["sparsity_counts"]["prunable_zeros"] == eager["sparsity_counts"]["prunable_zeros"]
    assert _same_masks(compiled["masks"], eager["masks"])
    assert compiled["target_reached"] and eager["target_reached"]


def test_flags_reach_the_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--model",
            "lenet5",
            "--batch-size",
            "512",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--channels-last",
            "--out",
            str(tmp_path / "r"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["channels_last"] is True and summary["compile"] is False


class _Uncompilable:
    """A pruner plugin that declares its mechanism cannot run under torch.compile."""

    @staticmethod
    @hookimpl
    def register_pruners(register: Any) -> None:
        register("no-compile", lambda targets: MaskPruner(targets), compiles=False)


def test_a_pruner_that_cannot_compile_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugins.reset({"no-compile": _Uncompilable})
    args = ["run", "--model", "lenet5", "--dataset", "digits", "--epochs", "1", "--pruner", "no-compile", "--quiet"]
    with pytest.raises(SystemExit) as info:
        main([*args, "--compile", "--out", str(tmp_path / "compiled")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Pruner 'no-compile' cannot run under --compile" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "compiled").exists()
    registry = plugins.get_plugins().registry
    assert registry.get("pruners", "no-compile").metadata["compiles"] is False
    assert registry.get("pruners", "magnitude").metadata["compiles"] is True  # the default
