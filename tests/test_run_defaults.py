"""Defaults have one owner, RunConfig: ``prunekit run``'s options show and apply its values."""

from __future__ import annotations

from click.testing import CliRunner

from prunekit.core.config.settings import RunConfig
from prunekit.run_command import _RUN_FIELDS, build_config, run

DEFAULTS = RunConfig()


def test_every_single_valued_option_defaults_to_runconfigs_value():
    checked = []
    for param in run.params:
        field = _RUN_FIELDS.get(param.name or "")
        if field is None or getattr(param, "multiple", False):
            continue
        assert param.default == getattr(DEFAULTS, field), f"--{param.name}: {param.default!r} != RunConfig.{field}"
        checked.append(field)
    assert {"model", "dataset", "optimizer", "sparsity", "epochs", "batch_size", "seed", "checkpoint_every"} <= set(checked)


def test_no_options_build_the_default_runconfig():
    ctx = run.make_context("run", [])
    options = {k: v for k, v in ctx.params.items() if k in _RUN_FIELDS}
    assert build_config(ctx, None, options) == DEFAULTS


def test_help_shows_runconfigs_defaults():
    out = CliRunner().invoke(run, ["--help"], terminal_width=200).output
    for shown in (f"[default: {DEFAULTS.model}]", f"[default: {DEFAULTS.epochs}]", f"[default: {', '.join(DEFAULTS.samplers)}]"):
        assert shown in out, shown
