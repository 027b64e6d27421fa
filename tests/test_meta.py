"""Meta tests: the public hooks are documented, exercised, and the README example works."""

import inspect
import json
import re
import types
from pathlib import Path

from prunekit import hookspecs
from prunekit.core import plugins
from prunekit.core.config import RunConfig
from prunekit.core.registry import KINDS
from prunekit.core.runner import run

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


def test_one_hook_per_kind():
    assert sorted(HOOKS) == sorted(f"register_{kind}" for kind in KINDS)


def test_every_hookspec_has_a_docstring_and_is_documented_with_its_signature():
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and len(fn.__doc__.strip()) > 40, name
        signature = f"{name}({', '.join(inspect.signature(fn).parameters)})"
        assert f"`{signature}`" in README, f"README does not document {signature}"


def test_every_hookspec_is_exercised_by_the_builtin_plugins():
    loaded = plugins.reset()
    for name in HOOKS:
        kind = name.removeprefix("register_")
        impls = getattr(loaded.manager.hook, name).get_hookimpls()
        assert impls, f"no plugin implements {name}"
        assert loaded.registry.names(kind), f"{name} registered nothing"


def test_readme_plugin_example_runs(tmp_path):
    loaded = plugins.reset()
    if "random-scores" not in loaded.registry.names("pruners"):  # plugins/prunekit-example not installed: the README's copy
        blocks = re.findall(r"```python\n(.*?)```", README, re.S)
        source = next(b for b in blocks if "class RandomPruner" in b)
        module = types.ModuleType("prunekit_example")
        exec(compile(source, "README:prunekit_example", "exec"), module.__dict__)
        loaded = plugins.reset({"random-scores": module})
    out, summary = run(
        RunConfig(pruner="random-scores", pruner_opts={"seed": "3"}, epochs=1, sparsity=0.5, out=str(tmp_path / "r"), quiet=True),
        plugins=loaded,
    )
    assert summary["pruner"] == "random-scores" and summary["target_reached"]
    # masks (1 B) + fixed random scores (4 B) per prunable weight, all on the ledger
    assert summary["ledger"]["pruner_state_bytes_per_prunable_weight"] == 5.0
    assert json.loads((out / "summary.json").read_text())["pruner_options"] == {"scope": "global", "seed": 3}
