"""N:M structure through MaskPruner: exact groups at the end of a gradual ramp, for every mask storage."""

from __future__ import annotations

import json

import pytest
import torch
from built_runs import run_keeping_parts

from prunekit.builtin.models import lenet5
from prunekit.builtin.pruners import magnitude
from prunekit.core.config.settings import RunConfig
from prunekit.core.run.runner import run
from prunekit.core.sparsity.structure import groups, is_n_of_m
from prunekit.core.sparsity.targets import prunable_targets
from prunekit.report.build import build_report

# LeNet-5 input dimensions: conv1 1, conv2 6, fc1 400, fc2 120, fc3 84
DENSE_2_4 = ["features.0.weight", "features.4.weight"]
DENSE_4_8 = ["features.0.weight", "features.4.weight", "classifier.5.weight"]


@pytest.mark.parametrize("storage", ["bool", "bits", "implicit"])
@pytest.mark.parametrize(("pattern", "dense", "scope"), [("2:4", DENSE_2_4, "global"), ("4:8", DENSE_4_8, "layer")])
def test_final_masks_hold_exactly_n_of_every_m(storage, pattern, dense, scope):
    torch.manual_seed(0)
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    pruner = magnitude(targets, scope=scope, mask_storage=storage, structure=pattern)
    n, m = map(int, pattern.split(":"))
    assert pruner.structure_summary()["dense_layers"] == dense
    for sparsity in (0.1, 0.3, 0.45, 0.5):  # a gradual ramp to 1 - N/M
        pruner.update_masks(sparsity, 1)
        for i, target in enumerate(targets):
            mask = pruner.masks[i]
            if target.name in dense:
                assert mask is None and bool((target.weight != 0).all())
                continue
            kept = groups(target.weight != 0, m).sum(1)
            assert bool((kept >= n).all())  # no group below N on the way
            assert int((mask == 0).sum()) == round(sparsity * mask.numel()) or scope == "global"
    for i, target in enumerate(targets):
        if target.name not in dense:
            assert is_n_of_m(pruner.masks[i], n, m) and is_n_of_m(target.weight != 0, n, m)
    summary = pruner.structure_summary()
    assert summary["dense_layers"] == dense and summary["achieved_sparsity_structured"] == 0.5


def test_conv_groups_run_along_input_channels():
    weight = torch.arange(2 * 8 * 3 * 3, dtype=torch.float32).view(2, 8, 3, 3)
    grouped = groups(weight, 4)
    assert grouped.shape == (2 * 3 * 3 * 2, 4)
    assert grouped[0].tolist() == weight[0, 0:4, 0, 0].tolist()  # one output channel and kernel position


def test_a_2_4_run_reports_its_structure(tmp_path):
    out, summary = run(RunConfig(sparsity=0.5, pruner_opts={"structure": "2:4"}, epochs=1, out=str(tmp_path / "r"), quiet=True))
    structure = summary["structure"]
    assert structure["pattern"] == "2:4" and structure["dense_layers"] == DENSE_2_4
    assert structure["achieved_sparsity_structured"] == 0.5 and summary["target_reached"] is True
    assert summary["achieved_sparsity"] < 0.5  # over every prunable weight, conv layers dense
    assert json.loads((out / "summary.json").read_text())["structure"] == structure
    report = build_report(tmp_path).markdown.read_text()
    assert "magnitude [2:4, 2 layers dense]" in report


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--sparsity", "0.7", "--pruner-opt", "structure=2:4"], "structure 2:4 needs sparsity 0.5"),
        (["--sparsity", "0.5", "--pruner-opt", "structure=4:2"], "structure must be 'unstructured' or N:M"),
        (
            ["--sparsity", "0.5", "--pruner-opt", "structure=2:4", "--pruner-opt", "scope=erk"],
            "needs scope global, layer or uniform",
        ),
    ],
)
def test_bad_structure_is_one_line_exit_2(tmp_path, run_cli, args, says):
    out = tmp_path / "r"
    result = run_cli("run", "--epochs", "1", "--quiet", "--out", out, *args)
    assert result.code == 2 and says in result.err and len(result.err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("pruner", ["state", "movement-w0"])
def test_every_pruner_that_declares_structure_ends_exactly_2_4(tmp_path, monkeypatch, pruner):
    pytest.importorskip({"state": "prunekit_adamwprune", "movement-w0": "prunekit_movement"}[pruner])
    config = RunConfig(
        pruner=pruner, sparsity=0.5, pruner_opts={"structure": "2:4"}, epochs=1, warmup=2, prune_end=8, frequency=2,
        out=str(tmp_path / "r"), quiet=True,
    )  # fmt: skip
    summary, built = run_keeping_parts(monkeypatch, config)
    assert summary["structure"]["achieved_sparsity_structured"] == 0.5 and summary["target_reached"] is True
    assert summary["structure"]["dense_layers"] == DENSE_2_4
    for target in built.targets:
        if target.name not in DENSE_2_4:
            assert is_n_of_m(target.parameter.detach() != 0, 2, 4), target.name
