"""The matrix gives each pruner its default schedule, skips schedules a pruner does not
support (with the reason), and drops ramp settings from constant-schedule runs."""

from __future__ import annotations

import textwrap

import pytest

from prunekit import hookimpl
from prunekit.core.config.settings import RunConfig
from prunekit.core.plugins import loading as plugins
from prunekit.core.run.validation import validate
from prunekit.core.sparsity.pruner import MaskPruner
from prunekit.errors import UsageError
from prunekit.matrix.expand import expand
from prunekit.matrix.hashing import run_id
from prunekit.matrix.spec import spec_from_text


class _Toy(MaskPruner):
    def score(self, index, target):
        return target.parameter.detach().abs()


class ConstantPlugin:
    """A pruner that, like rigl, supports only the constant schedule."""

    @staticmethod
    @hookimpl
    def register_pruners(register):
        register("toy-constant", lambda targets: _Toy(targets), schedules=("constant",))


@pytest.fixture
def registry():
    return plugins.reset({"toy-constant": ConstantPlugin}).registry


def plan_of(text: str, registry):
    return expand(spec_from_text(textwrap.dedent(text), "test.yaml", "test"), registry)


def test_each_pruner_gets_its_default_schedule_and_constant_runs_drop_ramp_settings(registry):
    plan = plan_of(
        """
        optimizers: [adamw]
        pruners: [none, magnitude, toy-constant]
        sparsities: [0.9]
        settings: {epochs: 1, frequency: 5}
    """,
        registry,
    )
    got = {r.config.pruner: (r.config.schedule, r.config.frequency) for r in plan.runs}
    assert got == {"none": ("gmp", None), "magnitude": ("gmp", 5), "toy-constant": ("constant", None)}
    for run in plan.runs:
        validate(run.config, registry)


def test_resolved_schedule_keeps_earlier_run_ids(registry):
    # a run that names no schedule hashes as it did when the default was written out as "gmp"
    plan = plan_of("optimizers: [adamw]\npruners: [magnitude]\nsparsities: [0.5]\n", registry)
    [planned] = plan.runs
    assert planned.id == run_id(RunConfig(pruner="magnitude", sparsity=0.5, schedule="gmp"))


def test_an_unsupported_schedule_is_skipped_with_the_reason(registry):
    plan = plan_of(
        """
        optimizers: [adamw]
        pruners: [magnitude, toy-constant]
        schedules: [gmp, constant]
        sparsities: [0.5]
    """,
        registry,
    )
    assert sorted((r.config.pruner, r.config.schedule) for r in plan.runs) == [
        ("magnitude", "constant"),
        ("magnitude", "gmp"),
        ("toy-constant", "constant"),
    ]
    [skip] = plan.skipped
    assert skip.what == "pruner 'toy-constant' + schedule 'gmp'" and skip.runs == 1
    assert "supports only the constant schedule" in skip.reason


def test_prunekit_run_refuses_an_unsupported_schedule_and_ramp_settings_with_constant(registry):
    with pytest.raises(UsageError, match="supports only the constant schedule, not 'cubic'"):
        validate(RunConfig(pruner="toy-constant", schedule="cubic"), registry)
    with pytest.raises(UsageError, match="--warmup does not apply to the constant schedule"):
        validate(RunConfig(pruner="magnitude", schedule="constant", warmup=3), registry)
    assert validate(RunConfig(pruner="toy-constant"), registry).config.schedule == "constant"
    assert validate(RunConfig(pruner="magnitude"), registry).config.schedule == "gmp"
