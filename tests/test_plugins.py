"""The plugin system: provenance, duplicates, broken plugins, unknown names."""

import importlib.metadata
import json
import types

import pytest

from prunekit import hookimpl
from prunekit.core.plugins import loading as plugins
from prunekit.errors import UsageError


def plugin(**hooks):
    """A plugin object implementing the given hooks."""
    ns = types.SimpleNamespace()
    for name, fn in hooks.items():
        setattr(ns, name, hookimpl(fn))
    return ns


def test_builtins_are_recorded_with_distribution_and_version():
    loaded = plugins.get_plugins()
    entry = loaded.registry.get("pruners", "magnitude")
    assert entry.plugin == "prunekit.builtin.pruners" and entry.distribution == "prunekit"
    assert loaded.infos["prunekit.builtin.samplers"].registered == {"samplers": ["process", "torch"]}


def test_duplicate_names_are_an_error_naming_both_plugins():
    def register_pruners(register):
        register("magnitude", lambda targets: None)

    loaded = plugins.reset({"copycat": plugin(register_pruners=register_pruners)})
    assert "registered by both prunekit.builtin.pruners (prunekit) and copycat" in loaded.infos["copycat"].error
    with pytest.raises(UsageError, match="registered by both prunekit.builtin.pruners .* and copycat"):
        loaded.registry.get("pruners", "magnitude")


def test_a_failing_hook_does_not_take_the_others_down():
    def register_pruners(register):
        register("fine", lambda targets: None)
        raise RuntimeError("boom")

    def register_models(register):
        register("bad-meta", lambda **kw: None, colour="red")

    loaded = plugins.reset({"flaky": plugin(register_pruners=register_pruners, register_models=register_models)})
    assert "register_pruners failed: RuntimeError: boom" in loaded.infos["flaky"].error
    assert "unknown metadata ['colour']" in loaded.infos["flaky"].error
    assert "fine" in loaded.registry.names("pruners")
    assert "magnitude" in loaded.registry.names("pruners")


def test_entry_point_that_fails_to_import_is_skipped_with_its_error(monkeypatch, run_cli):
    real = importlib.metadata.entry_points

    def fake_entry_points(**kw):
        if kw.get("group") == "prunekit":
            return importlib.metadata.EntryPoints(
                [importlib.metadata.EntryPoint("broken", "prunekit_no_such_module_xyz", "prunekit")]
            )
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    loaded = plugins.reset()
    assert "failed to load: ModuleNotFoundError" in loaded.infos["broken"].error
    assert "magnitude" in loaded.registry.names("pruners")
    result = run_cli("plugins", "--json")
    assert result.code == 0
    broken = [p for p in json.loads(result.out) if p["name"] == "broken"][0]
    assert "prunekit_no_such_module_xyz" in broken["errors"][0]


def test_misspelled_hook_disables_only_that_plugin():
    ns = types.SimpleNamespace(register_pruner=hookimpl(lambda register: None))
    loaded = plugins.reset({"typo": ns})
    assert "invalid hook" in loaded.infos["typo"].error
    assert not loaded.manager.has_plugin("typo")


def test_unknown_names_list_what_is_available_and_what_to_install(monkeypatch):
    real = importlib.metadata.entry_points
    monkeypatch.setattr(  # a machine with only the core installed
        importlib.metadata,
        "entry_points",
        lambda **kw: importlib.metadata.EntryPoints([]) if kw.get("group") == "prunekit" else real(**kw),
    )
    registry = plugins.reset().registry
    with pytest.raises(UsageError) as info:
        registry.get("samplers", "rocm")
    assert str(info.value) == "Unknown sampler 'rocm'. Available: process, torch. Install prunekit-rocm-mem."
    with pytest.raises(
        UsageError, match=r"^Unknown pruner 'state'\. Available: magnitude, none\. Install prunekit-adamwprune\.$"
    ):
        registry.get("pruners", "state")
    with pytest.raises(UsageError, match=r"^Unknown model 'vgg'\. Available: .*lenet5.*\.$"):
        registry.get("models", "vgg")


def test_list_and_plugins_commands(run_cli):
    result = run_cli("list", "pruners")
    assert result.code == 0
    assert "magnitude" in result.out and "scope='global' (global|layer|uniform|erk)" in result.out
    result = run_cli("plugins")
    assert "prunekit.builtin.optimizers (prunekit" in result.out and "adamwadv" in result.out
    assert run_cli("list", "widgets").code == 2
