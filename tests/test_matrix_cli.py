"""`prunekit matrix` on the command line without training: bad input exits 2 and writes nothing, --dry-run, --set, the shipped examples."""

from __future__ import annotations

import json

import pytest
import yaml

from prunekit import cli as prunekit_cli
from prunekit.core.plugins import loading as plugins
from prunekit.matrix import examples
from prunekit.matrix.cli import matrix
from prunekit.matrix.expand import expand

if "matrix" not in prunekit_cli.cli.commands:  # until prunekit/cli.py registers it
    prunekit_cli.cli.add_command(matrix)


def listing(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else None


def test_malformed_yaml_exits_2_and_writes_nothing(tmp_path, run_cli):
    spec = tmp_path / "bad.yaml"
    spec.write_text("optimizers: [adamw\npruners: magnitude\n")
    out = tmp_path / "out"
    result = run_cli("matrix", spec, "--out", out)
    assert result.code == 2
    assert result.err.startswith(f"Error: Matrix spec {spec} is not valid YAML at line") and result.err.count("\n") == 1
    assert not out.exists()


def test_unknown_names_exit_2_listing_all_and_write_nothing(tmp_path, run_cli):
    spec = tmp_path / "grid.yaml"
    spec.write_text("models: [lenet9]\noptimizers: [adamx]\npruners: [magnitude, prune-o-matic]\n")
    out = tmp_path / "out"
    result = run_cli("matrix", spec, "--out", out)
    assert result.code == 2 and "has 3 problems" in result.err
    assert "lenet9" in result.err and "adamx" in result.err and "prune-o-matic" in result.err
    assert not out.exists()


def test_out_dir_holding_another_matrix_is_refused_untouched(tmp_path, run_cli):
    out = tmp_path / "out"
    out.mkdir()
    (out / "matrix.json").write_text(json.dumps({"name": "other", "spec_hash": "0123456789abcdef", "runs": []}))
    (out / "runs").mkdir()
    before = listing(out), (out / "matrix.json").read_text()
    result = run_cli("matrix", "--example", "digits-quick", "--out", out)
    assert result.code == 2 and "holds a different matrix ('other'" in result.err
    assert (listing(out), (out / "matrix.json").read_text()) == before


def test_non_empty_dir_without_a_matrix_is_refused(tmp_path, run_cli):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli("matrix", "--example", "digits-quick", "--out", out)
    assert result.code == 2 and "holds no matrix.json" in result.err
    assert listing(out) == ["notes.txt"]


def test_bad_command_usage(tmp_path, run_cli):
    assert "Unknown example 'nope'. Available: digits-dst, digits-quick" in run_cli("matrix", "--example", "nope").err
    assert run_cli("matrix").code == 2
    assert "--jobs must be at least 1" in run_cli("matrix", "--example", "digits-quick", "--jobs", "0").err
    missing = run_cli("matrix", tmp_path / "missing.yaml", "--out", tmp_path / "o")
    assert missing.code == 2 and "does not exist" in missing.err and not (tmp_path / "o").exists()


def test_dry_run_lists_runs_and_writes_nothing(tmp_path, run_cli):
    out = tmp_path / "out"
    result = run_cli("matrix", "--example", "digits-quick", "--out", out, "--dry-run")
    assert result.code == 0, result.err
    lines = [line.split() for line in result.out.splitlines() if line.startswith("  new")]
    assert len(lines) == len(expand(examples.load("digits-quick"), plugins.get_registry()).runs)
    assert not out.exists()


def test_set_overrides_are_yaml_values_and_checked(tmp_path, run_cli):
    out = tmp_path / "out"
    plain = run_cli("matrix", "--example", "digits-quick", "--out", out, "--dry-run")
    changed = run_cli("matrix", "--example", "digits-quick", "--out", out, "--dry-run", "--set", "epochs=1", "--set", "seeds=3")
    assert changed.code == 2 and "Unknown setting 'seeds'" in changed.err
    changed = run_cli("matrix", "--example", "digits-quick", "--out", out, "--dry-run", "--set", "epochs=1", "--set", "seed=3")
    assert changed.code == 0 and "seed3-" in changed.out
    ids = lambda text: {line.split()[-1] for line in text.splitlines() if line.startswith("  new")}  # noqa: E731
    seeds = len(examples.load("digits-quick").axes["seeds"])  # seed=3 replaces the spec's axis of seeds
    assert len(ids(changed.out)) * seeds == len(ids(plain.out)) and not ids(changed.out) & ids(plain.out)
    bad = run_cli("matrix", "--example", "digits-quick", "--out", out, "--set", "epochs=many")
    assert bad.code == 2 and "Setting 'epochs' must be int, got 'many'" in bad.err and not out.exists()


# ---- shipped examples ----


@pytest.mark.parametrize("name", ["digits-quick", "digits-dst", "lenet5-mnist", "resnet18-cifar10", "resnet50-imagenet"])
def test_examples_parse_and_expand_with_whatever_is_installed(name, run_cli):
    assert name in examples.names()
    registry = plugins.get_registry()
    plan = expand(examples.load(name), registry)
    optimizers = {r.config.optimizer for r in plan.runs}
    pruners = {r.config.pruner for r in plan.runs}
    for skip in plan.skipped:  # only optional plugins or declared incompatibilities are skipped
        assert skip.reason.startswith("not installed") or "does not keep" in skip.reason
    assert all(p in registry.entries["pruners"] for p in pruners)
    printed = run_cli("matrix", "--example", name, "--print")
    assert printed.code == 0 and yaml.safe_load(printed.out)["name"] == name
    if name == "digits-quick":
        assert optimizers == {"sgd", "adamw"}  # one of each family, three seeds each (make run's grid)
        dense = [r for r in plan.runs if r.config.pruner == "none"]
        assert sorted((r.config.optimizer, r.config.seed) for r in dense) == [(o, s) for o in ("adamw", "sgd") for s in (0, 1, 2)]
        assert all({r.config.seed for r in plan.runs if r.config.pruner == p} == {0, 1, 2} for p in pruners)
        pruned = [r for r in plan.runs if r.config.pruner != "none"]
        assert {r.config.sparsity for r in pruned} == {0.5, 0.7, 0.9}
        assert pruners <= {"none", "magnitude", "movement", "state"}  # make run stays about 5 minutes
        assert len(plan.runs) <= 51
    if name in ("resnet18-cifar10", "resnet50-imagenet"):
        assert {r.config.sparsity for r in plan.runs if r.config.pruner != "none"} == {0.7}
    if name == "resnet50-imagenet":
        assert all(r.config.amp for r in plan.runs)


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "{}\n"])
def test_empty_spec_file_is_refused(tmp_path, run_cli, text):
    spec = tmp_path / "empty.yaml"
    spec.write_text(text)
    out = tmp_path / "out"
    result = run_cli("matrix", spec, "--out", out)
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith(f"Error: Matrix spec {spec} is empty; give at least one axis")
    assert not out.exists()


def test_spec_file_that_is_not_utf8_is_one_line(tmp_path, run_cli):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    result = run_cli("matrix", spec, "--out", tmp_path / "out")
    assert result.code == 2 and result.err.count("\n") == 1 and "is not UTF-8 text" in result.err
    assert not (tmp_path / "out").exists()
