"""Intervals, paired tests, ties and Findings on fixture runs whose right answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from report_runs import TEST_EXAMPLES, tables, write_run

from prunekit.core import rundir
from prunekit.core.outcomes import Outcomes, fingerprint_test_set
from prunekit.core.rundir import OUTCOMES, Malformed
from prunekit.report.stats import Bootstrap, holm

RNG = np.random.default_rng(7)


def random_correct(accuracy: float, n: int = TEST_EXAMPLES, rng=RNG) -> np.ndarray:
    """Exactly round(accuracy% of n) examples right, at random positions."""
    correct = np.zeros(n, bool)
    correct[rng.permutation(n)[: round(accuracy * n / 100)]] = True
    return correct


def write(runs, name, optimizer, seed, correct, pruner="magnitude", target=0.7, **kw):
    write_run(runs, name, optimizer, pruner, target, seed, 100 * correct.mean(), correct=correct, **kw)


def report_json(root, run_cli):
    result = run_cli("report", root, "--format", "json", "--no-figures")
    assert result.code == 0, result.err
    data = json.loads((root / "report.json").read_text())
    return {r["method"]: r for t in data["tables"] for r in t["rows"]}, data, result


def test_identical_predictions_are_tied_and_share_rank_1(tmp_path, run_cli):
    for seed in (0, 1, 2):
        correct = random_correct(90 + seed)
        write(tmp_path / "runs", f"adam-{seed}", "adam", seed, correct)
        write(tmp_path / "runs", f"adamw-{seed}", "adamw", seed, correct.copy())
    rows, data, result = report_json(tmp_path, run_cli)
    a, b = rows["adam + magnitude"], rows["adamw + magnitude"]
    assert a["rank"] == b["rank"] == 1 and a["tied_with_best"] and b["tied_with_best"]
    tied = next(r for r in (a, b) if r["p_value"] is not None)
    assert tied["difference_to_best"] == 0 and tied["difference_to_best_ci95"] == [0, 0] and tied["p_holm"] == 1.0
    assert tied["paired_seeds"] == [0, 1, 2]
    assert data["tables"][0]["tied_with_best"] == ["adam + magnitude", "adamw + magnitude"]
    assert "tied with the best: adam + magnitude (91.0 [" in result.out and "adamw + magnitude (91.0 [" in result.out


def test_thirty_points_on_1000_examples_is_not_a_tie(tmp_path, run_cli):
    right = np.ones(1000, bool)
    worse = right.copy()
    worse[RNG.permutation(1000)[:300]] = False
    write(tmp_path / "runs", "a", "adam", 0, right)
    write(tmp_path / "runs", "b", "adamw", 0, worse)
    rows, _, result = report_json(tmp_path, run_cli)
    best, other = rows["adam + magnitude"], rows["adamw + magnitude"]
    assert (best["rank"], other["rank"]) == (1, 2) and other["tied_with_best"] is False
    assert other["difference_to_best"] == pytest.approx(-30.0) and other["difference_to_best_ci95"][1] < -25
    assert other["p_holm"] < 0.001
    assert "tied with the best: adam + magnitude (100.0 [" in result.out and "adamw + magnitude (" not in result.out


def test_equal_accuracy_disagreeing_on_30_percent_is_a_tie(tmp_path, run_cli):
    """The test is about accuracy: 150 examples only one gets right, 150 only the other."""
    a = np.zeros(1000, bool)
    a[:700] = True
    b = a.copy()
    b[:150], b[700:850] = False, True
    write(tmp_path / "runs", "a", "adam", 0, a)
    write(tmp_path / "runs", "b", "adamw", 0, b)
    rows, _, _ = report_json(tmp_path, run_cli)
    assert rows["adam + magnitude"]["tied_with_best"] and rows["adamw + magnitude"]["tied_with_best"]
    assert rows["adamw + magnitude"]["difference_to_best"] == 0 and rows["adamw + magnitude"]["p_holm"] > 0.5


def test_one_seed_interval_is_the_binomial_one_and_covers_95_percent():
    n, p = 1000, 0.8
    interval = Bootstrap(random_correct(100 * p, n)[None, :]).mean([0])
    binomial = 1.96 * math.sqrt(p * (1 - p) / n) * 100
    assert (interval.high - interval.low) / 2 == pytest.approx(binomial, rel=0.06)
    rng = np.random.default_rng(3)
    covered = 0
    trials = 300
    for _ in range(trials):  # fresh test sets drawn from a population where the model is right 80% of the time
        ci = Bootstrap((rng.random(n) < p)[None, :], replicates=2000, seed=int(rng.integers(1 << 30))).mean([0])
        covered += ci.low <= 100 * p <= ci.high
    assert 0.92 <= covered / trials <= 0.98


def test_seed_to_seed_variation_widens_the_interval():
    n = 1000
    one = Bootstrap(random_correct(80, n)[None, :]).mean([0])
    seeds = Bootstrap(np.stack([random_correct(a, n) for a in (70, 80, 90)])).mean([0, 1, 2])
    assert seeds.estimate == pytest.approx(80.0)
    assert seeds.se > 2.5 * one.se  # seed sd 10 points / sqrt(3) dwarfs the test-set error


def test_intervals_stay_within_0_and_100_percent():
    near_perfect = Bootstrap(np.stack([np.ones(359, bool), random_correct(97, 359)])).mean([0, 1])
    assert near_perfect.high <= 100.0 and near_perfect.low >= 0.0


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == []


def test_shared_ranks_and_table_statements(tmp_path, run_cli):
    top, low = random_correct(95), random_correct(80)
    for name, optimizer, pruner, correct in (
        ("a", "adam", "magnitude", top),
        ("b", "adamw", "magnitude", top),
        ("c", "sgd", "magnitude", low),
        ("d", "adamw", "movement", low),
    ):
        write(tmp_path / "runs", name, optimizer, 0, correct, pruner=pruner)
    result = run_cli("report", tmp_path, "--no-figures")
    md = (tmp_path / "report.md").read_text()
    rows = tables(md)["lenet5 on digits, 70% target sparsity"]
    assert [(r["rank"], r["tied with best"].split(" ")[0]) for r in rows] == [
        ("1", "best"),
        ("1", "yes"),
        ("3", "no"),
        ("3", "no"),
    ]
    assert "Compared on the same 1,000 test examples: one example is 0.10 points." in md
    assert "Differences smaller than about" in md and "hierarchical bootstrap (10,000 replicates" in md
    findings = md.split("## Findings")[1].split("##")[0]
    assert "2 of 4 rows tied with the best: adam + magnitude 95.0 [" in findings
    assert "tied with the best: adam + magnitude (95.0 [" in result.out


def test_rows_on_another_test_set_or_without_outcomes_are_not_compared(tmp_path, run_cli):
    runs = tmp_path / "runs"
    write(runs, "a", "adam", 0, random_correct(90))
    write(runs, "b", "adamw", 0, random_correct(90))
    outcomes = rundir.read_outcomes(runs / "b")
    rundir.write_outcomes(runs / "b", Outcomes(outcomes.correct, fingerprint_test_set("digits", {"split": 1}, np.zeros(1000)), 3))
    write(runs, "c", "sgd", 0, random_correct(90))
    (runs / "c" / OUTCOMES).unlink()  # a run from before prunekit stored per-example results
    rows, _, _ = report_json(tmp_path, run_cli)
    assert rows["adam + magnitude"]["rank"] == 1
    assert rows["adamw + magnitude"]["rank"] is None and rows["adamw + magnitude"]["tied_with_best"] is None
    assert rows["adamw + magnitude"]["flags"] == ["not compared: scored on a different test set (fingerprint differs)"]
    assert rows["sgd + magnitude"]["flags"] == ["not compared: no per-example test results (test_correct.bin) in every run"]
    findings = (tmp_path / "report.md").read_text().split("## Findings")[1].split("##")[0]
    assert "Not compared (2 rows): adamw + magnitude at 70% (scored on a different test set" in findings


def test_outcomes_file_is_compact_and_checked(tmp_path, run_cli):
    path = tmp_path / OUTCOMES
    correct = RNG.random(50_000) < 0.9
    rundir.write_outcomes(tmp_path, Outcomes(correct, "sha256:x", 5))
    assert path.stat().st_size < 6_250 + 200
    back = rundir.read_outcomes(tmp_path)
    assert np.array_equal(back.correct, correct) and (back.fingerprint, back.epoch, back.n) == ("sha256:x", 5, 50_000)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(Malformed, match="holds 6249 bytes of bits for 50000 examples"):
        rundir.read_outcomes(tmp_path)
    write(tmp_path / "runs", "a", "adam", 0, random_correct(90))
    (tmp_path / "runs" / "a" / OUTCOMES).write_bytes(b"garbage")
    assert run_cli("report", tmp_path, "--no-figures").code == 0
    md = (tmp_path / "report.md").read_text()
    assert "a: test_correct.bin has no valid header line; its per-example results are left out." in md


def test_report_is_deterministic_and_findings_are_written_from_the_data(tmp_path, run_cli):
    runs = tmp_path / "runs"
    for seed in (0, 1, 2):
        write(runs, f"mag-{seed}", "adamw", seed, random_correct(90), peak=300 + seed, mean=250)
        write(runs, f"none-{seed}", "adamw", seed, random_correct(93), pruner="none", target=0.0, peak=300 - seed, mean=250)
    write(runs, "never-pruned", "adamw", 0, random_correct(99), pruner="state", achieved=0.0)
    first = json.loads(json.dumps(report_json(tmp_path, run_cli)[1]["tables"]))
    second = report_json(tmp_path, run_cli)[1]["tables"]
    assert first == second
    md = (tmp_path / "report.md").read_text()
    findings = md.split("## Findings")[1].split("##")[0]
    assert "Excluded for missing their target sparsity (1): never-pruned (adamw + state, target 70%, achieved 0.0%)" in findings
    assert "Bytes kept per prunable weight of lenet5 (exact ledger): adamw + none 12 (4 parameter, 8 optimizer state)" in findings
    assert "adamw + magnitude 13 (4 parameter, 8 optimizer state, 1 pruner state)" in findings
    # one row per table here, so no between-method memory difference is claimed
    assert "differs by" not in findings


def test_real_runs_store_their_outcomes_and_the_report_pairs_them(tmp_path, run_cli):
    from prunekit.core.config import RunConfig
    from prunekit.core.runner import run

    summaries = {}
    for seed in (0, 1):
        out, summaries[seed] = run(RunConfig(epochs=1, seed=seed, out=str(tmp_path / "runs" / f"s{seed}"), quiet=True))
        outcomes = rundir.read_outcomes(out)
        assert outcomes.n == summaries[seed]["test_examples"] == 359 and outcomes.epoch == 1
        assert outcomes.accuracy == pytest.approx(summaries[seed]["final_test_accuracy"], abs=1e-9)
        assert outcomes.fingerprint == summaries[seed]["test_set_fingerprint"]
        assert (out / OUTCOMES).stat().st_size < 400  # 45 bytes of bits and a header
    assert summaries[0]["test_set_fingerprint"] == summaries[1]["test_set_fingerprint"]  # the split ignores the seed
    rows, data, _ = report_json(tmp_path, run_cli)
    assert data["tables"][0]["test_examples"] == 359 and data["tables"][0]["one_example_points"] == pytest.approx(100 / 359)
    (only,) = rows.values()
    assert only["seeds"] == [0, 1] and only["rank"] == 1
    low, high = only["accuracy_ci95"]
    assert low < only["accuracy_mean"] < high
