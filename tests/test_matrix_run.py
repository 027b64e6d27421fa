"""`prunekit matrix` end to end: failures are isolated and recorded, then reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from prunekit.matrix import store

# Until prunekit/cli.py registers the commands, the child adds them before calling main().
BOOT = textwrap.dedent("""
    import sys
    from prunekit import cli
    from prunekit.matrix.cli import matrix
    from prunekit.report.cli import report
    for command in (matrix, report):
        if command.name not in cli.cli.commands:
            cli.cli.add_command(command)
    cli.main(sys.argv[1:])
""")

FAULTY = '''
import os
import signal

import torch

from prunekit import hookimpl
from prunekit.core.config.options import Option
from prunekit.core.sparsity.pruner import MaskPruner


class Faulty(MaskPruner):
    """Magnitude pruning that fails on purpose, in the way its mode names."""

    def __init__(self, targets, mode):
        super().__init__(targets)
        self.mode = mode

    def score(self, index, target):
        return target.parameter.detach().abs()

    def before_step(self, step):
        if self.mode == "nan":
            for target in self.targets:
                if target.parameter.grad is not None:
                    target.parameter.grad.fill_(float("nan"))

    def update_masks(self, sparsity, step):
        if self.mode == "raise":
            raise RuntimeError("toy pruner failed on purpose")
        if self.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.mode != "nan":
            super().update_masks(sparsity, step)


@hookimpl
def register_pruners(register):
    register("toy-faulty", lambda targets, mode="raise": Faulty(targets, mode), description="fails on purpose",
             options=(Option("mode", str, "raise", "how to fail", choices=("raise", "kill", "nan")),))
'''

SPEC = """
name: failures
datasets: [{name: synthetic, options: {train_size: 64, test_size: 32, channels: 1}}]
optimizers: [adamw]
pruners:
  - {name: toy-faulty, options: {mode: raise}}
  - {name: toy-faulty, options: {mode: kill}}
  - {name: toy-faulty, options: {mode: nan}}
  - magnitude
sparsities: [0.5]
settings: {epochs: 2, batch_size: 16, sample_interval: 0.1}
"""


def install_faulty_plugin(site):
    site.mkdir()
    (site / "prunekit_faulty.py").write_text(FAULTY)
    info = site / "prunekit_faulty-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: prunekit-faulty\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[prunekit]\nfaulty = prunekit_faulty\n")


def prunekit(*args, env=None):
    return subprocess.run([sys.executable, "-c", BOOT, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def test_failed_runs_are_recorded_and_the_others_go_on_then_reported(tmp_path):
    site = tmp_path / "site"
    install_faulty_plugin(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    spec = tmp_path / "failures.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "m"

    result = prunekit("matrix", spec, "--out", out, "--jobs", "1", "--threads", "1", env=env)
    assert result.returncode == 1, result.stderr
    assert "1 of 4 runs finished (1 this time), 3 failed" in result.stdout
    matrix = json.loads((out / "matrix.json").read_text())
    ids = [r["id"] for r in matrix["runs"]]
    assert len(ids) == 4 and sorted(os.listdir(out / "runs")) == sorted(ids)
    failures = {}
    for run_id in ids[:3]:  # the three faulty runs come first; the good one still ran after them
        assert not (out / "runs" / run_id / "summary.json").exists()
        failures[run_id] = json.loads((out / "runs" / run_id / "failure.json").read_text())
        assert failures[run_id]["config"] == matrix["runs"][ids.index(run_id)]["config"]
    raised, killed, diverged = (failures[i] for i in ids[:3])
    assert raised["reason"] == "RuntimeError: toy pruner failed on purpose" and raised["returncode"] == 1
    assert any("Traceback" in line for line in raised["log_tail"])
    assert killed["reason"].startswith("killed by SIGKILL") and killed["signal"] == "SIGKILL" and killed["returncode"] == -9
    assert diverged["reason"].startswith("training diverged (NaN/inf loss): training loss became nan")
    good = json.loads((out / "runs" / ids[3] / "summary.json").read_text())
    assert good["pruner"] == "magnitude" and good["target_reached"] is True
    for run_id in ids[:3]:
        assert f"failed {run_id}: {failures[run_id]['reason']}" in result.stdout

    stamps = {i: (out / "runs" / i / "failure.json").stat().st_mtime_ns for i in ids[:3]}
    again = prunekit("matrix", spec, "--out", out, "--keep-failed", "--threads", "1", env=env)
    assert again.returncode == 1 and "0 to run now" in again.stdout
    assert {i: (out / "runs" / i / "failure.json").stat().st_mtime_ns for i in ids[:3]} == stamps

    report = prunekit("report", out, "--format", "json", env=env)
    assert report.returncode == 0, report.stderr
    text = (out / "report.md").read_text()
    assert "failed 1/1: RuntimeError: toy pruner failed on purpose" in text
    assert "failed 1/1: killed by SIGKILL" in text
    magnitude_row = next(line for line in text.splitlines() if "| magnitude |" in line)
    assert magnitude_row.startswith("| — | adamw | magnitude |")  # one seed: no rank, no verdict
    assert "no verdict (one seed)" in magnitude_row
    for line in text.splitlines():
        if "toy-faulty" in line and line.startswith("|"):
            assert line.startswith("| — |")  # flagged rows are not ranked
    rows = json.loads((out / "report.json").read_text())["runs"]
    assert sorted(r["status"] for r in rows) == ["completed", "failed", "failed", "failed"]
    assert store.run_state(out, ids[3]) == store.FINISHED
