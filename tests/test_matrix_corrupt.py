"""A run whose summary.json is unusable is not finished: the matrix redoes it, the report lists it."""

from __future__ import annotations

import json

import pytest

from prunekit.core.rundir import layout as rundir
from prunekit.matrix import store

SPEC = """
name: corrupt
datasets: [{name: synthetic, options: {train_size: 32, test_size: 16, channels: 1, image_size: 32}}]
optimizers: [adamw]
pruners: [magnitude]
sparsities: [0.5]
settings: {epochs: 1, batch_size: 16}
"""


@pytest.mark.parametrize("text", ["", '{"status": "compl', "[]", '{"status": "completed"}'])
def test_unusable_summary_is_malformed_not_finished(tmp_path, text):
    (tmp_path / rundir.SUMMARY).write_text(text)
    assert rundir.state(tmp_path) == rundir.MALFORMED


def test_matrix_redoes_a_run_with_a_corrupt_summary_and_report_lists_it_until_then(tmp_path, run_cli):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "m"
    first = run_cli("matrix", spec, "--out", out, "--threads", "1", "--quiet")
    assert first.code == 0, first.err
    [run_id] = [r["id"] for r in json.loads((out / "matrix.json").read_text())["runs"]]
    summary = out / "runs" / run_id / "summary.json"
    good = json.loads(summary.read_text())
    summary.write_text(summary.read_text()[:100])  # cut short, as by a full disk or a bad copy

    report = run_cli("report", out)
    assert report.code == 0, report.err
    assert f"{run_id}" in report.out + (out / "report.md").read_text()
    assert "malformed: summary.json is not valid JSON" in (out / "report.md").read_text()

    again = run_cli("matrix", spec, "--out", out, "--threads", "1")
    assert again.code == 0, again.err
    assert "0 finished, 0 failed before, 0 interrupted, 1 with a malformed summary.json, 0 new; 1 to run now." in again.out
    assert store.run_state(out, run_id) == store.FINISHED
    assert json.loads(summary.read_text())["final_test_accuracy"] == good["final_test_accuracy"]
