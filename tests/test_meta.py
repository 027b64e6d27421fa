"""Meta tests: the public hooks have docstrings and are exercised, and the template plugin runs
(that the docs document each hook and show the plugins: tests/test_docs.py)."""

import importlib.util
import inspect
import json
from pathlib import Path

from prunekit import hookspecs
from prunekit.core.config.settings import RunConfig
from prunekit.core.plugins import loading as plugins
from prunekit.core.plugins.registry import KINDS
from prunekit.core.run.runner import run

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "plugins" / "prunekit-example" / "prunekit_example" / "__init__.py"
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


def test_one_hook_per_kind():
    assert sorted(HOOKS) == sorted(f"register_{kind}" for kind in KINDS)


def test_every_hookspec_has_a_docstring():
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and len(fn.__doc__.strip()) > 40, name


def test_every_hookspec_is_exercised_by_the_builtin_plugins():
    loaded = plugins.reset()
    for name in HOOKS:
        kind = name.removeprefix("register_")
        impls = getattr(loaded.manager.hook, name).get_hookimpls()
        assert impls, f"no plugin implements {name}"
        assert loaded.registry.names(kind), f"{name} registered nothing"


def test_the_template_plugin_runs(tmp_path):
    loaded = plugins.reset()
    if "random-scores" not in loaded.registry.names("pruners"):  # plugins/prunekit-example not installed: load its file
        spec = importlib.util.spec_from_file_location("prunekit_example", TEMPLATE)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        loaded = plugins.reset({"random-scores": module})
    out, summary = run(
        RunConfig(pruner="random-scores", pruner_opts={"seed": "3"}, epochs=1, sparsity=0.5, out=str(tmp_path / "r"), quiet=True),
        plugins=loaded,
    )
    assert summary["pruner"] == "random-scores" and summary["target_reached"]
    # masks (1 B) + fixed random scores (4 B) per prunable weight, all on the ledger
    assert summary["ledger"]["pruner_state_bytes_per_prunable_weight"] == 5.0
    assert json.loads((out / "summary.json").read_text())["pruner_options"] == {"scope": "global", "seed": 3}


def test_each_factory_protocol_is_the_call_the_core_makes():
    """hookspecs' Protocols say what kinds.KIND_SPECS (the owner) checks registrations against."""
    from prunekit.core.plugins.kinds import KIND_SPECS

    protocols = {
        "models": hookspecs.ModelFactory,
        "datasets": hookspecs.DatasetFactory,
        "optimizers": hookspecs.OptimizerFactory,
        "pruners": hookspecs.PrunerFactory,
        "samplers": hookspecs.SamplerFactory,
        "trackers": hookspecs.TrackerFactory,
    }
    assert sorted(protocols) == sorted(KIND_SPECS)
    for kind, protocol in protocols.items():
        params = list(inspect.signature(protocol.__call__).parameters.values())[1:]
        positional = tuple(p.name for p in params if p.kind is p.POSITIONAL_ONLY)
        keywords = tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY)
        options = any(p.kind is p.VAR_KEYWORD for p in params)
        spec = KIND_SPECS[kind]
        assert (positional, keywords, options) == (spec.positional, spec.keywords, spec.takes_options), kind
