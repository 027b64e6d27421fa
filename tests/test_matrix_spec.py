"""`prunekit matrix` without training: spec checks, grid expansion, run ids, bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from prunekit import cli as prunekit_cli
from prunekit import hookimpl
from prunekit.core.config.settings import RunConfig
from prunekit.core.plugins import loading as plugins
from prunekit.core.run.validation import validate
from prunekit.core.sparsity.pruner import MaskPruner
from prunekit.errors import UsageError
from prunekit.matrix.cli import matrix
from prunekit.matrix.expand import expand
from prunekit.matrix.hashing import config_hash, run_id
from prunekit.matrix.spec import parse_spec, spec_from_text

if "matrix" not in prunekit_cli.cli.commands:  # until prunekit/cli.py registers it
    prunekit_cli.cli.add_command(matrix)


class _Toy(MaskPruner):
    def score(self, index, target):
        return target.parameter.detach().abs()


class NeedsAdamPlugin:
    """A pruner that, like `state`, needs Adam's second moment."""

    @staticmethod
    @hookimpl
    def register_pruners(register):
        register("toy-adam", lambda targets: _Toy(targets), requires=("exp_avg_sq",))


@pytest.fixture
def registry():
    return plugins.reset({"needs-adam": NeedsAdamPlugin}).registry


def plan_of(text: str, registry, overrides=None):
    return expand(spec_from_text(textwrap.dedent(text), "test.yaml", "test", overrides), registry)


def problems_of(text: str, registry) -> str:
    with pytest.raises(UsageError) as info:
        plan_of(text, registry)
    return str(info.value)


GRID = """
    models: [lenet5]
    datasets: [digits]
    optimizers: [sgd, adamw]
    pruners: [none, magnitude, toy-adam]
    sparsities: [0.5, 0.9]
    seeds: [0, 1]
    settings: {epochs: 1}
"""


def test_cross_product_minus_incompatible_pairs_with_dense_once_per_optimizer(registry):
    plan = plan_of(GRID, registry)
    combos = [(r.config.optimizer, r.config.pruner, r.config.sparsity, r.config.seed) for r in plan.runs]
    assert len(combos) == len(set(combos))
    dense = sorted(c for c in combos if c[1] == "none")
    assert dense == [("adamw", "none", 0.0, 0), ("adamw", "none", 0.0, 1), ("sgd", "none", 0.0, 0), ("sgd", "none", 0.0, 1)]
    assert sorted(c for c in combos if c[1] == "magnitude") == sorted(
        (o, "magnitude", s, seed) for o in ("sgd", "adamw") for s in (0.5, 0.9) for seed in (0, 1)
    )
    assert sorted(c for c in combos if c[1] == "toy-adam") == sorted(
        ("adamw", "toy-adam", s, seed) for s in (0.5, 0.9) for seed in (0, 1)
    )
    assert len(plan.runs) == 4 + 8 + 4
    [skip] = plan.skipped
    assert skip.what == "optimizer 'sgd' + pruner 'toy-adam'" and skip.runs == 4
    assert "needs optimizer state exp_avg_sq" in skip.reason and "'sgd' does not keep" in skip.reason
    for run in plan.runs:  # every planned config passes the runner's own validation
        validate(run.config, registry)
        assert run.config.epochs == 1 and run.config.model == "lenet5"


def test_dense_runs_ignore_sparsity_and_schedule_axes(registry):
    plan = plan_of(
        """
        optimizers: [adamw]
        pruners: [none, {name: magnitude, options: {scope: layer}}]
        sparsities: [0.5, 0.9]
        schedules: [gmp, cubic]
        settings: {warmup: 3, frequency: 2}
    """,
        registry,
    )
    dense = [r.config for r in plan.runs if r.config.pruner == "none"]
    assert len(dense) == 1 and len(plan.runs) == 1 + 4
    assert (dense[0].sparsity, dense[0].schedule, dense[0].warmup, dense[0].frequency, dense[0].pruner_opts) == (
        0.0,
        "gmp",
        None,
        None,
        {},
    )
    pruned = {(r.config.sparsity, r.config.schedule, r.config.warmup, r.config.pruner_opts["scope"]) for r in plan.runs[1:]}
    assert pruned == {(s, k, 3, "layer") for s in (0.5, 0.9) for k in ("gmp", "cubic")}


def test_incompatibility_comes_from_metadata_not_names(registry):
    """An optimizer that keeps exp_avg_sq is paired with the pruner; one that does not is skipped."""
    plan = plan_of(
        """
        optimizers: [adam, adamwadv, sgd]
        pruners: [toy-adam]
        sparsities: [0.5]
    """,
        registry,
    )
    assert sorted(r.config.optimizer for r in plan.runs) == ["adam", "adamwadv"]
    assert [s.what for s in plan.skipped] == ["optimizer 'sgd' + pruner 'toy-adam'"]


def test_all_optimizers_come_from_the_registry_and_explicit_entries_keep_settings(registry):
    plan = plan_of(
        """
        optimizers: [{name: sgd, lr: 0.1, options: {momentum: 0.8}}, all]
        pruners: [magnitude]
        sparsities: [0.5]
    """,
        registry,
    )
    assert plan.optimizers == ["sgd"] + [n for n in registry.names("optimizers") if n != "sgd"]
    by_name = {r.config.optimizer: r.config for r in plan.runs}
    assert sorted(by_name) == registry.names("optimizers")
    assert by_name["sgd"].lr == 0.1 and by_name["sgd"].optimizer_opts == {"momentum": 0.8}
    assert by_name["adamw"].lr is None and by_name["adamw"].optimizer_opts == {}


def test_default_pruner_is_resolved_and_recorded(registry):
    plan = plan_of("optimizers: [adamw]\nsparsities: [0.5]\n", registry)
    assert [r.config.pruner for r in plan.runs] == ["magnitude"]


def test_optional_missing_pruner_is_skipped_but_a_plain_unknown_one_is_an_error(registry):
    plan = plan_of(
        """
        optimizers: [adamw]
        pruners: [magnitude, {name: not-installed-here, optional: true}]
        sparsities: [0.5]
    """,
        registry,
    )
    assert [r.config.pruner for r in plan.runs] == ["magnitude"]
    assert [(s.what, s.reason) for s in plan.skipped] == [("pruner 'not-installed-here'", "not installed")]
    message = problems_of("optimizers: [adamw]\npruners: [magnitude, not-installed-here]\n", registry)
    assert "Unknown pruner 'not-installed-here'" in message and "Available:" in message


def test_every_unknown_name_is_listed_at_once(registry):
    message = problems_of(
        """
        models: [lenet5, nosuchmodel]
        datasets: [nosuchdata]
        optimizers: [adamw, nosuchopt]
        pruners: [nosuchpruner]
        samplers: [[nosuchsampler, process, othersampler]]
    """,
        registry,
    )
    assert message.startswith("Matrix spec test.yaml has 6 problems:")
    assert "Unknown sampler 'othersampler'" in message
    for name in (
        "model 'nosuchmodel'",
        "dataset 'nosuchdata'",
        "optimizer 'nosuchopt'",
        "pruner 'nosuchpruner'",
        "sampler 'nosuchsampler'",
    ):
        assert f"Unknown {name}" in message
    assert "\n" not in message


def test_unknown_keys_bad_values_and_options_are_listed_at_once(registry):
    message = problems_of(
        """
        lr: 0.1
        colour: blue
        sparsities: [0.5, high]
        pruners: [{name: magnitude, opts: {}}]
        settings: {out: /tmp/x, frobnicate: 1, batch_size: many}
    """,
        registry,
    )
    assert "has 7 problems" in message
    assert "Unknown key 'lr' (a setting: put it under 'settings:')" in message
    assert "Unknown key 'colour'" in message
    assert "Axis 'sparsities' takes numbers, got 'high'" in message
    assert "Unknown key 'opts' in an entry of 'pruners'" in message
    assert "Setting 'out' is decided by prunekit matrix" in message
    assert "Unknown setting 'frobnicate'" in message
    assert "Setting 'batch_size' must be int, got 'many'" in message


def test_values_the_runner_would_refuse_are_found_before_anything_runs(registry):
    message = problems_of(
        """
        pruners: [{name: magnitude, options: {scope: diagonal}}]
        sparsities: [0.5, 1.5]
    """,
        registry,
    )
    assert "Sparsity must be in [0, 1), got 1.5" in message
    assert "Option 'scope' of pruner 'magnitude' must be one of: global, layer" in message


def test_empty_axis_and_empty_grid_are_errors(registry):
    assert "Axis 'seeds' is empty" in problems_of("seeds: []\n", registry)
    message = problems_of("optimizers: [sgd]\npruners: [toy-adam]\nsparsities: [0.5]\n", registry)
    assert "has no runs to do" in message and "'sgd' does not keep" in message


def test_axis_and_setting_for_one_field_conflict_but_set_overrides_replace_the_axis(registry):
    assert "'epochs' is both an axis ('epochs') and a setting" in problems_of("epochs: [1, 2]\nsettings: {epochs: 3}\n", registry)
    plan = plan_of("optimizers: [adamw]\nepochs: [1, 2]\n", registry, overrides={"epochs": 5})
    assert [r.config.epochs for r in plan.runs] == [5]


def test_exponent_numbers_without_a_dot_are_numbers(registry):
    plan = plan_of("optimizers: [adamw]\nlrs: [1e-3, 3E-4]\nsettings: {weight_decay: 5e-4}\n", registry)
    assert sorted((r.config.lr, r.config.weight_decay) for r in plan.runs) == [(3e-4, 5e-4), (1e-3, 5e-4)]


def test_spec_hash_ignores_name_and_key_spelling_but_not_the_grid():
    a = parse_spec({"name": "a", "sparsities": [0.5, 0.7], "settings": {"batch-size": 8}})
    b = parse_spec({"name": "b", "description": "x", "sparsities": [0.5, 0.7], "settings": {"batch_size": 8}})
    c = parse_spec({"name": "a", "sparsities": [0.5, 0.9], "settings": {"batch_size": 8}})
    assert a.spec_hash == b.spec_hash != c.spec_hash


HASH_SCRIPT = "from prunekit.core.config.settings import RunConfig; from prunekit.matrix.hashing import run_id; print(run_id(RunConfig(**%s)))"


@pytest.mark.parametrize(
    "fields",
    [
        {"optimizer": "sgd", "pruner": "magnitude", "sparsity": 0.7, "pruner_opts": {"scope": "layer"}},
        {"model": "timm:resnet34", "dataset": "cifar10", "pruner": "none", "sparsity": 0.0, "samplers": ["process", "torch"]},
    ],
)
def test_run_id_is_stable_across_processes(fields):
    here = run_id(RunConfig(**fields))
    there = subprocess.run(
        [sys.executable, "-c", HASH_SCRIPT % repr(fields)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert here == there
    assert "/" not in here and ":" not in here


def test_run_id_changes_with_any_setting_but_not_with_out_or_quiet():
    base = RunConfig(pruner="magnitude")
    assert run_id(base) == run_id(RunConfig(pruner="magnitude", out="/elsewhere", quiet=True))
    assert run_id(base).startswith("lenet5-digits-adamw-magnitude-s70-seed0-")
    variants = [
        RunConfig(pruner="magnitude", seed=1),
        RunConfig(pruner="magnitude", lr=0.01),
        RunConfig(pruner="magnitude", pruner_opts={"scope": "layer"}),
        RunConfig(pruner="magnitude", epochs=21),
        RunConfig(pruner="magnitude", samplers=["process", "torch"]),
    ]
    hashes = {config_hash(base)} | {config_hash(v) for v in variants}
    assert len(hashes) == 1 + len(variants)


# ---- the command's bad-input paths: exit 2, one line, nothing written ----
