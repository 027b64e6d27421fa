"""prunekit export: dense, sparse and nm safetensors files load back to a model with the run's test outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from prunekit.core.config.settings import RunConfig
from prunekit.core.run.runner import run
from prunekit.export import load_model
from prunekit.export.source import final_model

RUNS = {
    "magnitude": RunConfig(pruner="magnitude", sparsity=0.7),
    "state": RunConfig(pruner="state", sparsity=0.7, pruner_opts={"mask_storage": "bits"}),
    "movement": RunConfig(pruner="movement", sparsity=0.7),
    "nm": RunConfig(pruner="magnitude", sparsity=0.5, pruner_opts={"structure": "2:4", "mask_storage": "implicit"}),
}


def _logits(model, loader):
    with torch.no_grad():
        return torch.cat([model(inputs) for inputs, _ in loader])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, config in RUNS.items():
        config.epochs, config.quiet, config.out = 1, True, str(root / name)
        out[name] = run(config)[0]
    return out


@pytest.mark.parametrize("name", list(RUNS))
def test_exports_round_trip_to_the_runs_outputs(runs, run_cli, tmp_path, name):
    run_dir = runs[name]
    final = final_model(run_dir)
    model = final.built.model.eval()
    expected = _logits(model, final.built.test_loader)
    summary = json.loads((run_dir / "summary.json").read_text())
    predicted = expected.argmax(1) == torch.cat([labels for _, labels in final.built.test_loader])
    assert 100 * predicted.float().mean().item() == pytest.approx(summary["final_test_accuracy"])
    sizes = {}
    for fmt in ["dense", "sparse"] + (["nm"] if name == "nm" else []):
        path = tmp_path / f"{fmt}.safetensors"
        result = run_cli("export", run_dir, "--format", fmt, "--out", path)
        assert result.code == 0, result.err
        loaded = load_model(path)
        assert type(loaded) is type(model) and torch.equal(_logits(loaded, final.built.test_loader), expected)
        sizes[fmt] = path.stat().st_size
        assert f"{sizes[fmt]:,} bytes" in result.out
    assert json.loads((run_dir / "exports.json").read_text()) == sizes
    from prunekit.report.build import build_report

    text = build_report(run_dir, with_figures=False).markdown.read_text()
    assert f"{sizes['dense'] / 1024:,.1f} / {sizes['sparse'] / 1024:,.1f} / " in text
    assert sizes["sparse"] < sizes["dense"]
    if name == "nm":
        assert sizes["nm"] < sizes["dense"]
        with safe_open(str(tmp_path / "nm.safetensors"), framework="pt") as f:
            indices = f.get_tensor("classifier.1.weight::indices")
            assert indices.shape == (120 * 400 // 4, 2) and indices.dtype == torch.uint8
            assert "features.0.weight" in f.keys()  # conv1 (1 input channel) stays dense


def test_dense_export_loads_into_the_plain_model(runs, run_cli, tmp_path):
    from safetensors.torch import load_file

    from prunekit.builtin.models import lenet5

    path = tmp_path / "d.safetensors"
    assert run_cli("export", runs["magnitude"], "--format", "dense", "--out", path).code == 0
    plain = lenet5(10, 1, 32)
    plain.load_state_dict(load_file(str(path)))  # its own key names, masks folded in
    zeros = sum(int((p == 0).sum()) for n, p in plain.named_parameters() if n.endswith("weight"))
    assert zeros == json.loads((runs["magnitude"] / "summary.json").read_text())["sparsity_counts"]["prunable_zeros"]


def test_bad_exports_are_one_line_exit_2(runs, run_cli, tmp_path):
    cases = [
        (("export", tmp_path / "missing", "--out", tmp_path / "a.safetensors"), "no such run directory"),
        (("export", runs["magnitude"], "--format", "nm", "--out", tmp_path / "b.safetensors"), "--format nm needs"),
        (("export", runs["magnitude"], "--out", tmp_path / "c.pt"), ".safetensors"),
    ]
    for args, says in cases:
        result = run_cli(*args)
        assert result.code == 2 and says in result.err and len(result.err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(Exception, match="cannot read it as safetensors"):
        load_model(bad)


def test_bench_inference_times_dense_and_csr_on_cpu(runs, run_cli):
    result = run_cli("bench-inference", runs["magnitude"], "--repeats", "5", "--warmup", "2", "--batch-size", "8", "--json")
    assert result.code == 0, result.err
    measured = json.loads(result.out)
    assert set(measured["forms"]) == {"dense", "csr"} and "no GPU" in measured["skipped"]["semi_structured_2of4"]
    dense, csr = measured["forms"]["dense"], measured["forms"]["csr"]
    assert dense["median_ms"] > 0 and dense["p90_ms"] >= dense["median_ms"] and dense["batches"] == 5
    assert csr["weight_bytes"] < dense["weight_bytes"] and "convolution" in measured["note"]
    assert len(measured["load_average_1_5_15"]) == 3
    text = run_cli("bench-inference", runs["magnitude"], "--repeats", "5", "--warmup", "1").out
    assert "median" in text and "p90" in text and "skipped: needs CUDA" in text
