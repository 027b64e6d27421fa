"""`prunekit report` on fixture run directories: table contents, flags, figures, exports, bad input."""

from __future__ import annotations

import csv
import json
import struct

import pytest
import yaml
from report_runs import PRUNABLE, TEST_EXAMPLES, MiB, config_of, ledger_total, row, tables, write_run

from prunekit import cli as prunekit_cli
from prunekit.report.cli import report
from prunekit.report.load import load
from prunekit.report.memory import memory_figures, per_100mib_divisor, primary_figure

if "report" not in prunekit_cli.cli.commands:  # until prunekit/cli.py registers it
    prunekit_cli.cli.add_command(report)


@pytest.fixture
def matrix_dir(tmp_path):
    root = tmp_path / "m"
    runs = root / "runs"
    listed = {
        "adamw-mag-70-s0": write_run(runs, "adamw-mag-70-s0", "adamw", "magnitude", 0.7, 0, 90.0, peak=200, mean=150),
        "adamw-mag-70-s1": write_run(runs, "adamw-mag-70-s1", "adamw", "magnitude", 0.7, 1, 92.0, peak=250, mean=170),
        # the seed's ResNet-50 mistake: best accuracy, but it never pruned
        "adamw-state-70-s0": write_run(runs, "adamw-state-70-s0", "adamw", "state", 0.7, 0, 95.0, achieved=0.0),
        "adam-mag-70-s0": write_run(runs, "adam-mag-70-s0", "adam", "magnitude", 0.7, 0, 88.0, peak=100, mean=100),
        "sgd-mag-70-s0": write_run(runs, "sgd-mag-70-s0", "sgd", "magnitude", 0.7, 0, 85.0),
        "adamw-none-s0": write_run(runs, "adamw-none-s0", "adamw", "none", 0.0, 0, 93.0),
    }
    failed = config_of("sgd", "magnitude", 0.7, 1)
    (runs / "sgd-mag-70-s1").mkdir()
    (runs / "sgd-mag-70-s1" / "failure.json").write_text(
        json.dumps(
            {
                "status": "failed",
                "reason": "training diverged (NaN/inf loss): training loss became nan in epoch 2",
                "returncode": 1,
                "config": failed,
            }
        )
    )
    listed["sgd-mag-70-s1"] = failed
    (runs / "interrupted").mkdir()
    (runs / "interrupted" / "config.yaml").write_text(yaml.safe_dump(config_of("adam", "magnitude", 0.9, 0)))
    (runs / "interrupted" / "metrics.jsonl").write_text('{"epoch": 1, "test_accuracy": 50.0}\n{"epoch": 2, "te')
    (runs / "garbled").mkdir()
    (runs / "garbled" / "summary.json").write_text("{not json")
    (runs / "truncated").mkdir()
    (runs / "truncated" / "summary.json").write_text(json.dumps({"model": "lenet5", "final_test_accuracy": 1.0}))
    listed["never-started"] = config_of("adam", "magnitude", 0.5, 0)
    (root / "matrix.json").write_text(
        json.dumps(
            {
                "name": "fixture",
                "spec_hash": "x" * 16,
                "runs": [{"id": k, "config": v} for k, v in listed.items()],
                "skipped": [
                    {
                        "what": "optimizer 'sgd' + pruner 'state'",
                        "reason": "pruner 'state' needs optimizer state exp_avg_sq, which optimizer 'sgd' does not keep",
                        "runs": 1,
                    }
                ],
            }
        )
    )
    return root


def test_table_contents_flags_and_rankings(matrix_dir, run_cli):
    result = run_cli("report", matrix_dir)
    assert result.code == 0, result.err
    assert "Report of 7 runs" in result.out
    md = (matrix_dir / "report.md").read_text()
    t = tables(md)
    assert set(t) == {"lenet5 on digits, dense (no pruning)", "lenet5 on digits, 70% target sparsity"}
    rows = t["lenet5 on digits, 70% target sparsity"]
    mem = "process rss (process) peak / mean MiB"

    mag = row(rows, "adamw", "magnitude")
    assert mag["rank"] == "1" and mag["seeds"] == "2"
    assert mag["final acc % ± std"] == "91.00 ± 1.41" and mag["best-epoch acc %"] == "91.50 ± 1.41"
    assert mag["final acc % [95% CI]"].startswith("91.00 [") and (
        mag["vs best, points [95% simultaneous CI]"],
        mag["tied with best"],
    ) == (
        "0",
        "best",
    )
    assert (mag["target"], mag["achieved"]) == ("70%", "70.00%")
    assert (mag["pruner state B/weight"], mag["optimizer state B/weight"]) == ("1.00", "8.00")
    assert mag[mem] == "225.0 / 160.0"
    per = [f / (ledger_total("adamw", "magnitude") / (100 * MiB)) for f in (90, 92)]  # the ledger, never RSS
    assert mag["acc per 100 MiB"] == f"{(per[0] + per[1]) / 2:.2f} ± {abs(per[0] - per[1]) / 2**0.5:.2f}"
    assert mag["wall s"] == "10.5" and mag["flags"] == ""

    adam = row(rows, "adam", "magnitude")  # 30 of 1,000 examples fewer, but one seed: no verdict
    assert adam["rank"] == "—" and adam["acc per 100 MiB"] == f"{88 / (ledger_total('adam', 'magnitude') / (100 * MiB)):.2f}"
    assert adam["vs best, points [95% simultaneous CI]"] == "—" and adam["tied with best"] == "no verdict (one seed)"
    assert adam["final acc % [95% CI]"].startswith("88.00 [") and adam["final acc % [95% CI]"].endswith("test set only")
    never_pruned = row(rows, "adamw", "state")
    assert never_pruned["rank"] == "—" and never_pruned["final acc % ± std"] == "95.00" and never_pruned["achieved"] == "0.00%"
    assert never_pruned["flags"] == "missed target 1/1 (achieved 0.0%)"
    sgd = row(rows, "sgd", "magnitude")
    assert sgd["rank"] == "—" and sgd["seeds"] == "1 of 2" and sgd["final acc % ± std"] == "85.00"
    assert sgd["flags"] == "failed 1/2: training diverged (NaN/inf loss): training loss became nan in epoch 2"
    assert sgd["optimizer state B/weight"] == "4.00"
    assert [r["rank"] for r in rows] == ["1", "—", "—", "—"]  # ranked rows first, then the rest
    dense = t["lenet5 on digits, dense (no pruning)"]
    assert [(r["optimizer"], r["pruner"], r["target"], r["pruner state B/weight"]) for r in dense] == [
        ("adamw", "none", "0%", "0.00")
    ]

    best = md.split("## Tied with the best (flagged rows excluded)")[1].split("##")[0]
    assert "70% target sparsity: tied with the best: adamw + magnitude (91.0 [" in best
    assert "highest accuracy per 100 MiB of exact ledger total (tensor bytes counted, not measured): adamw + magnitude" in best
    assert "state" not in best and "sgd" not in best
    assert "peak exact ledger total (tensor bytes counted, not measured) in MiB / 100" in md
    problems = md.split("## Problems")[1]
    assert "- interrupted: incomplete: no summary.json or failure.json" in problems
    assert "- garbled: malformed: summary.json is not valid JSON" in problems
    assert "- truncated: malformed: summary.json lacks best_test_accuracy" in problems
    assert "- never-started: not run yet" in problems
    assert "optimizer 'sgd' + pruner 'state': pruner 'state' needs optimizer state exp_avg_sq" in md
    for name in ("interrupted", "garbled", "truncated"):
        assert f"left out {name}:" in result.out

    html = (matrix_dir / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<table>") == 2
    assert "<td>missed target 1/1 (achieved 0.0%)</td>" in html and 'src="figures/ledger.png"' in html


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


FIGURES = ("accuracy_vs_sparsity", "accuracy_per_epoch", "memory_timeline", "memory_vs_accuracy", "ledger")


def test_figures_are_real_pngs_with_content(matrix_dir, run_cli):
    from matplotlib.image import imread

    assert run_cli("report", matrix_dir).code == 0
    md = (matrix_dir / "report.md").read_text()
    for name in FIGURES:
        path = matrix_dir / "figures" / f"{name}.png"
        width, height = png_size(path)
        assert width >= 500 and height >= 300 and path.stat().st_size > 20_000
        pixels = imread(path)[..., :3]
        ink = (pixels < 0.9).any(axis=-1).mean()
        assert 0.01 < ink < 0.9, (name, ink)  # drawn on, but not a solid block
        assert f"](figures/{name}.png)" in md


def test_flat_csv_and_json_exports(matrix_dir, run_cli):
    assert run_cli("report", matrix_dir, "--format", "csv", "--format", "json", "--no-figures").code == 0
    assert not (matrix_dir / "figures").exists()
    with open(matrix_dir / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    records = json.loads((matrix_dir / "report.json").read_text())["runs"]
    assert len(rows) == len(records) == 7
    by_run = {r["run"]: r for r in records}
    assert by_run["adamw-state-70-s0"]["target_reached"] is False and by_run["adamw-state-70-s0"]["achieved_sparsity"] == 0.0
    assert by_run["sgd-mag-70-s1"]["status"] == "failed" and "nan" in by_run["sgd-mag-70-s1"]["failure_reason"]
    assert by_run["adamw-mag-70-s1"]["process.rss_bytes.peak"] == 250 * MiB
    assert by_run["adamw-mag-70-s1"]["accuracy_per_100mib"] == pytest.approx(
        92 / (ledger_total("adamw", "magnitude") / (100 * MiB))
    )
    assert by_run["adamw-mag-70-s1"]["accuracy_per_100mib_divides_by"] == "ledger.total"
    assert by_run["adamw-mag-70-s1"]["test_examples"] == TEST_EXAMPLES
    assert by_run["adamw-mag-70-s1"]["optimizer_state_bytes_per_prunable_weight"] == 8.0
    assert {r["run"] for r in rows} == set(by_run) and rows[0].keys() == records[0].keys()


def test_memory_figure_preference_allocator_over_process_when_every_run_has_it(tmp_path):
    both = {
        "process": {"scope": "process", "figures": {"rss_bytes": {"peak": 900.0 * MiB, "mean": 800.0 * MiB}}},
        "torch": {
            "scope": "allocator",
            "figures": {
                "reserved_bytes": {"peak": 60.0 * MiB, "mean": 50.0 * MiB},
                "allocated_bytes": {"peak": 40.0 * MiB, "mean": 30.0 * MiB},
            },
        },
    }
    write_run(tmp_path, "a", "adamw", "magnitude", 0.7, 0, 90.0, samplers=both)
    loaded = load(tmp_path)
    figures = memory_figures(loaded.runs)
    assert [f.key for f in figures] == ["torch.allocated_bytes", "torch.reserved_bytes", "process.rss_bytes"]
    assert primary_figure(loaded.runs, figures).label == "torch allocated (allocator)"
    assert per_100mib_divisor(loaded.runs, figures).key == "torch.allocated_bytes"  # exact tensor bytes on the GPU
    write_run(tmp_path, "b", "adamw", "magnitude", 0.7, 1, 90.0)  # measured RSS only
    loaded = load(tmp_path)
    assert primary_figure(loaded.runs, memory_figures(loaded.runs)).key == "process.rss_bytes"
    assert per_100mib_divisor(loaded.runs, memory_figures(loaded.runs)).key == "ledger.total"  # never RSS


def test_a_single_run_directory_and_a_folder_of_runs(tmp_path, run_cli):
    write_run(tmp_path / "runs", "one", "sgd", "magnitude", 0.5, 0, 80.0)
    write_run(tmp_path / "runs", "two", "sgd", "magnitude", 0.5, 1, 82.0)
    assert run_cli("report", tmp_path / "runs" / "one", "--no-figures").code == 0
    assert (
        "| — | sgd | magnitude | 1 | 80.00 [77.41, 82.36] test set only | — | no verdict (one seed) | 80.00 |"
        in (tmp_path / "runs" / "one" / "report.md").read_text()
    )
    assert run_cli("report", tmp_path / "runs").code == 0
    assert "| 1 | sgd | magnitude | 2 | 81.00 [" in (tmp_path / "runs" / "report.md").read_text()
    assert run_cli("report", tmp_path / "runs").code == 0  # its own figures/ folder is not a run


def test_settings_column_only_for_fields_that_split_a_method(tmp_path, run_cli):
    runs = tmp_path / "runs"
    write_run(runs, "sgd", "sgd", "magnitude", 0.5, 0, 80.0, lr=0.1)  # a per-optimizer lr is not a method of its own
    write_run(runs, "adamw", "adamw", "magnitude", 0.5, 0, 85.0)
    assert run_cli("report", tmp_path, "--no-figures").code == 0
    assert "settings" not in tables((tmp_path / "report.md").read_text())["lenet5 on digits, 50% target sparsity"][0]
    write_run(runs, "adamw-fast", "adamw", "magnitude", 0.5, 0, 70.0, lr=0.01)  # an lr axis is
    assert run_cli("report", tmp_path, "--no-figures").code == 0
    rows = tables((tmp_path / "report.md").read_text())["lenet5 on digits, 50% target sparsity"]
    assert [(r["optimizer"], r["settings"], r["final acc % ± std"]) for r in rows] == [
        ("adamw", "lr=default", "85.00"),
        ("sgd", "lr=0.1", "80.00"),
        ("adamw", "lr=0.01", "70.00"),
    ]


def test_equal_accuracy_shares_a_rank(tmp_path, run_cli):
    for name, optimizer, final in (("a", "adam", 97.0), ("b", "adamw", 97.0), ("c", "sgd", 80.0)):
        for seed, luck in enumerate((-1.0, 0.0, 1.0)):
            write_run(tmp_path / "runs", f"{name}{seed}", optimizer, "magnitude", 0.9, seed, final + luck)
    assert run_cli("report", tmp_path, "--no-figures").code == 0
    md = (tmp_path / "report.md").read_text()
    rows = tables(md)["lenet5 on digits, 90% target sparsity"]
    assert [(r["rank"], r["optimizer"]) for r in rows] == [("1", "adam"), ("1", "adamw"), ("3", "sgd")]
    assert "tied with the best: adam + magnitude (97.0 [" in md and "adamw + magnitude (97.0 [" in md


def test_only_failed_runs_still_make_a_report(tmp_path, run_cli):
    d = tmp_path / "runs" / "bad"
    d.mkdir(parents=True)
    (d / "failure.json").write_text(json.dumps({"reason": "killed by SIGKILL", "config": config_of("sgd", "magnitude", 0.5, 0)}))
    assert run_cli("report", tmp_path).code == 0
    rows = tables((tmp_path / "report.md").read_text())["lenet5 on digits, 50% target sparsity"]
    assert rows[0]["final acc % [95% CI]"] == "—" and rows[0]["flags"] == "failed 1/1: killed by SIGKILL"
    assert not (tmp_path / "figures").exists()


def test_bad_directories_exit_2(tmp_path, run_cli):
    missing = run_cli("report", tmp_path / "nope")
    assert missing.code == 2 and "is not a directory" in missing.err
    (tmp_path / "empty").mkdir()
    empty = run_cli("report", tmp_path / "empty")
    assert empty.code == 2 and "holds no run directories" in empty.err
    assert list((tmp_path / "empty").iterdir()) == []


def test_mask_storage_shown_in_tables_csv_and_ledger_figure(tmp_path, run_cli, monkeypatch):
    runs = tmp_path / "runs"
    for name, storage, final, bpw in (("bool", "bool", 90.0, 1.0), ("bits", "bits", 90.0, 0.125), ("imp", "implicit", 90.0, 0.0)):
        write_run(runs, name, "adamw", "magnitude", 0.7, 0, final)
        s = json.loads((runs / name / "summary.json").read_text())
        s["pruner_options"] = {"scope": "global", "mask_storage": storage}
        s["ledger"]["pruner_state"] = bpw * PRUNABLE
        s["ledger"]["pruner_state_bytes_per_prunable_weight"] = bpw
        (runs / name / "summary.json").write_text(json.dumps(s))
    assert run_cli("report", tmp_path, "--format", "csv").code == 0
    md = (tmp_path / "report.md").read_text()
    rows = tables(md)["lenet5 on digits, 70% target sparsity"]
    by_pruner = {r["pruner"]: r for r in rows}
    assert set(by_pruner) == {"magnitude", "magnitude [bits masks]", "magnitude [implicit masks]"}
    assert [by_pruner[p]["pruner state B/weight"] for p in sorted(by_pruner)] == ["1.00", "0.12", "0.00"]
    assert "unless marked [bits masks]" in md
    with open(tmp_path / "report.csv", newline="") as handle:
        assert sorted(r["mask_storage"] for r in csv.DictReader(handle)) == ["bits", "bool", "implicit"]
    from prunekit.report import figures
    from prunekit.report.load import load as load_runs
    from prunekit.report.table import build_rows

    seen = {}
    monkeypatch.setattr(
        figures, "_save", lambda fig, path: seen.setdefault("labels", [t.get_text() for t in fig.axes[0].get_yticklabels()])
    )
    figures.ledger_bars(build_rows(load_runs(tmp_path).runs), tmp_path / "ledger.png")
    assert {"adamw + magnitude [bits masks]", "adamw + magnitude [implicit masks]", "adamw + magnitude"} == set(seen["labels"])


def test_compact_state_is_its_own_row_and_findings_name_its_optimizer_bytes(tmp_path, run_cli):
    runs = tmp_path / "runs"
    for name, storage, per_weight in (("dense", "dense", 8.0), ("compact", "compact", 2.525)):
        write_run(runs, name, "adamw", "state", 0.7, 0, 90.0)
        s = json.loads((runs / name / "summary.json").read_text())
        s["optimizer_options"] = {"state_storage": storage}
        s["ledger"]["per_prunable_weight"] = {"fc": {"parameter": 4 * PRUNABLE, "optimizer_state": per_weight * PRUNABLE}}
        (runs / name / "summary.json").write_text(json.dumps(s))
    assert run_cli("report", tmp_path).code == 0
    md = (tmp_path / "report.md").read_text()
    rows = tables(md)["lenet5 on digits, 70% target sparsity"]
    assert {r["optimizer"] for r in rows} == {"adamw", "adamw [compact state]"}
    assert "adamw [compact state] + state 6.525 (4 parameter, 2.525 optimizer state)" in md
    assert "adamw + state 12 (4 parameter, 8 optimizer state)" in md
