"""A third-party pruner, installed as a real distribution, used by `prunekit run`."""

import json
import os
import subprocess
import sys
import textwrap

PLUGIN = '''
import torch
from prunekit import hookimpl
from prunekit.core.config.options import Option
from prunekit.core.sparsity.pruner import MaskPruner


class EveryOther(MaskPruner):
    """Scores by position, so the result is predictable."""

    def score(self, index, target):
        return torch.arange(target.numel(), dtype=torch.float32).reshape(target.parameter.shape)


@hookimpl
def register_pruners(register):
    register("toy-positional", lambda targets, scope="global": EveryOther(targets, scope),
             description="test plugin", options=(Option("scope", str, "global", choices=("global", "layer")),))
'''


def install_fake_distribution(site):
    """A module plus a dist-info folder: what pip leaves behind, found by importlib.metadata."""
    (site / "prunekit_toy.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "prunekit_toy-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: prunekit-toy\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text("[prunekit]\ntoy = prunekit_toy\n")


def test_third_party_pruner_end_to_end(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_fake_distribution(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "prunekit.cli",
            "run",
            "--pruner",
            "toy-positional",
            "--pruner-opt",
            "scope=layer",
            "--epochs",
            "1",
            "--sparsity",
            "0.5",
            "--out",
            str(out),
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pruner"] == "toy-positional" and summary["pruner_options"] == {"scope": "layer"}
    assert summary["environment"]["plugins"]["prunekit-toy"] == "0.3.1"
    assert summary["achieved_sparsity"] == round(0.5 * 61_470) / 61_470
    plugins = subprocess.run(
        [sys.executable, "-m", "prunekit.cli", "plugins", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    toy = [p for p in json.loads(plugins.stdout) if p["name"] == "toy"][0]
    assert toy == {
        "name": "toy",
        "distribution": "prunekit-toy",
        "version": "0.3.1",
        "registered": {"pruners": ["toy-positional"]},
        "errors": [],
    }
