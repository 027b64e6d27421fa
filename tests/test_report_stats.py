"""Intervals, paired tests, ties and Findings on fixture runs whose right answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from report_runs import TEST_EXAMPLES, tables, write_run

from prunekit.core.rundir import layout as rundir
from prunekit.core.rundir.layout import OUTCOMES, Malformed
from prunekit.core.rundir.outcomes import Outcomes, fingerprint_test_set
from prunekit.report.best import table_verdicts
from prunekit.report.stats import summarise, wilson_interval
from prunekit.testing.report_model import Regime, simulate

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


def spread_correct(accuracy: float, seeds=(0, 1, 2), spread: float = 1.0, n: int = TEST_EXAMPLES) -> list[np.ndarray]:
    """One outcome vector per seed, accuracies accuracy - spread, accuracy, accuracy + spread, ..."""
    return [random_correct(accuracy + spread * (i - (len(seeds) - 1) / 2), n) for i in range(len(seeds))]


def test_identical_predictions_are_tied_and_share_rank_1(tmp_path, run_cli):
    for seed in (0, 1, 2):
        correct = random_correct(90 + seed)
        write(tmp_path / "runs", f"adam-{seed}", "adam", seed, correct)
        write(tmp_path / "runs", f"adamw-{seed}", "adamw", seed, correct.copy())
    rows, data, result = report_json(tmp_path, run_cli)
    a, b = rows["adam + magnitude"], rows["adamw + magnitude"]
    assert a["rank"] == b["rank"] == 1 and a["tied_with_best"] and b["tied_with_best"]
    tied = next(r for r in (a, b) if r["p_adjusted"] is not None)
    assert tied["difference_to_best"] == 0 and tied["p_adjusted"] == 1.0
    low, high = tied["difference_to_best_ci95"]
    assert low < 0 < high  # the true difference from the best may be either way: 3 seeds are few
    assert data["tables"][0]["tied_with_best"] == ["adam + magnitude", "adamw + magnitude"]
    assert "tied with the best: adam + magnitude (91.0 [" in result.out and "adamw + magnitude (91.0 [" in result.out


def test_thirty_points_with_three_seeds_is_not_a_tie(tmp_path, run_cli):
    for seed, (good, bad) in enumerate(zip(spread_correct(95), spread_correct(65))):
        write(tmp_path / "runs", f"a{seed}", "adam", seed, good)
        write(tmp_path / "runs", f"b{seed}", "adamw", seed, bad)
    rows, _, result = report_json(tmp_path, run_cli)
    best, other = rows["adam + magnitude"], rows["adamw + magnitude"]
    assert (best["rank"], other["rank"]) == (1, 2) and other["tied_with_best"] is False
    assert other["difference_to_best"] == pytest.approx(-30.0) and other["difference_to_best_ci95"][1] < -20
    assert other["p_adjusted"] < 0.01
    assert "tied with the best: adam + magnitude (95.0 [" in result.out and "adamw + magnitude (" not in result.out


def test_one_seed_gives_no_verdict_even_for_thirty_points(tmp_path, run_cli):
    """One seed cannot separate a method from its luck: the old report called this 'significantly worse'."""
    right = np.ones(1000, bool)
    worse = right.copy()
    worse[RNG.permutation(1000)[:300]] = False
    write(tmp_path / "runs", "a", "adam", 0, right)
    write(tmp_path / "runs", "b", "adamw", 0, worse)
    rows, data, result = report_json(tmp_path, run_cli)
    for r in rows.values():
        assert r["tied_with_best"] is None and r["rank"] is None and r["accuracy_interval_test_set_only"] is True
        assert r["difference_to_best"] is None and r["p_adjusted"] is None
    assert data["tables"][0]["rows_without_verdict_one_seed"] == ["adam + magnitude", "adamw + magnitude"]
    md = (tmp_path / "report.md").read_text()
    findings = md.split("## Findings")[1].split("##")[0]
    assert "significantly worse" not in findings and "shown to be worse" not in findings
    assert "one seed cannot separate a method from its luck" in findings
    assert "no row is called better or worse; highest mean adam + magnitude 100.0 [" in findings
    table = tables(md)["lenet5 on digits, 70% target sparsity"]
    assert [r["tied with best"] for r in table] == ["no verdict (one seed)"] * 2
    assert all(r["final acc % [95% CI]"].endswith("test set only") for r in table)
    assert "no verdict (every compared row has one seed" in result.out


def test_equal_accuracy_disagreeing_on_30_percent_is_a_tie(tmp_path, run_cli):
    """The test is about accuracy: 150 examples only one gets right, 150 only the other, every seed."""
    for seed, shift in enumerate((0, 10, 20)):
        a = np.zeros(1000, bool)
        a[: 690 + shift] = True
        b = a.copy()
        b[:150], b[700:850] = False, True
        b[690 + shift : 700] = True
        write(tmp_path / "runs", f"a{seed}", "adam", seed, a)
        write(tmp_path / "runs", f"b{seed}", "adamw", seed, np.roll(b, 0))
    rows, _, _ = report_json(tmp_path, run_cli)
    assert rows["adam + magnitude"]["tied_with_best"] and rows["adamw + magnitude"]["tied_with_best"]


def test_one_seed_interval_is_the_binomial_one_and_covers_95_percent():
    n, p = 1000, 0.8
    low, high = wilson_interval(np.array(100 * p), n)
    binomial = 1.96 * math.sqrt(p * (1 - p) / n) * 100
    assert (high - low) / 2 == pytest.approx(binomial, rel=0.02)
    rng = np.random.default_rng(3)
    accuracy = 100 * (rng.random((4000, n)) < p).mean(axis=1)  # fresh test sets, a model right 80% of the time
    low, high = wilson_interval(accuracy, n)
    assert 0.94 <= ((low <= 100 * p) & (100 * p <= high)).mean() <= 0.96  # 4,000 test sets: standard error 0.34 point


def test_seed_to_seed_variation_widens_the_interval():
    n = 1000
    one = table_verdicts(random_correct(80, n)[None, :], [[0]])
    seeds = table_verdicts(np.stack([random_correct(a, n) for a in (75, 80, 85)]), [[0, 1, 2]])
    assert seeds.mean[0] == pytest.approx(80.0) and one.judged.tolist() == [False] and seeds.judged.tolist() == [True]
    assert seeds.high[0] - seeds.low[0] > 4 * (one.high[0] - one.low[0])  # t with 2 degrees of freedom: 4.30 x 5 / sqrt(3)


def test_intervals_stay_within_0_and_100_percent():
    v = table_verdicts(np.stack([np.ones(359, bool), random_correct(97, 359), random_correct(99, 359)]), [[0, 1], [2]])
    assert (v.high <= 100.0).all() and (v.low >= 0.0).all()


def test_test_set_luck_shared_by_seeds_is_counted_once():
    """Seeds that agree example by example: the between-seed variance is 0 and the test set is all the luck left."""
    correct = np.stack([random_correct(80, 400)] * 3)
    s = summarise(correct, [[0, 1, 2]])
    assert s.seed_var[0] == pytest.approx(0, abs=1e-12)
    assert s.shared[0, 0] == pytest.approx(80 * 20 / 399, rel=1e-9)  # the binomial variance, once, in points^2
    noisy = summarise(np.stack([random_correct(80, 400) for _ in range(3)]), [[0, 1, 2]])
    assert abs(noisy.shared[0, 0]) < 0.5 * s.shared[0, 0]  # independent runs share no example-level luck


def _simulated(regime: Regime, tables: int, seed: int):
    correct, runs = simulate(np.random.default_rng(seed), regime, tables)
    return table_verdicts(correct, regime.rows()), regime.truth(), runs


@pytest.mark.parametrize(
    "regime",
    [Regime(359, 3, 3.0, 10), Regime(2_000, 5, 0.8, 4), Regime(359, 3, 0.0, 16)],
    ids=["seed-luck-dominant", "mixed", "test-set-dominant"],
)
def test_calibration_when_the_truth_is_known(regime):
    """Every method truly equal: the family-wise rate of "not tied" and the coverage of the means.

    The old procedure called some method worse in 69% of the first regime's tables. 300 tables:
    the standard error of a 5% rate is 1.26 points, so the bound 5% + 2.5 standard errors (8.2%)
    fails a 10% procedure with probability about 90%; coverage is averaged over 300 x rows
    intervals (standard error about 0.5 point with the test set shared).
    """
    v, truth, _ = _simulated(regime, 300, seed=11)
    false_difference = (v.tied == 0).any(axis=1).mean()
    coverage = ((v.low <= truth) & (truth <= v.high)).mean()
    held = np.where(np.isnan(v.diff_low), True, (v.diff_low <= 0) & (0 <= v.diff_high)).all(axis=1).mean()
    assert false_difference <= 0.05 + 2.5 * 0.0126
    assert coverage >= 0.93 - 0.01
    assert held >= 0.93 - 0.015


def test_one_seed_tables_never_say_worse_and_the_interval_holds_the_run():
    """One seed, seed luck of 3 points: no verdict; the test-set-only interval is about the run, not the method."""
    v, truth, runs = _simulated(Regime(359, 1, 3.0, 10), 200, seed=5)
    assert np.isnan(v.tied).all() and (v.best == -1).all()
    assert ((v.low <= runs[..., 0]) & (runs[..., 0] <= v.high)).mean() >= 0.93
    assert ((v.low <= truth) & (truth <= v.high)).mean() < 0.8  # which is why it is labelled test set only


def test_a_true_two_point_difference_is_found_with_five_seeds():
    regime = Regime(10_000, 5, 0.0, 2, below=2.0)
    v, _, _ = _simulated(regime, 50, seed=2)
    assert (v.tied[:, 1] == 0).mean() >= 0.9


def test_shared_ranks_and_table_statements(tmp_path, run_cli):
    for name, optimizer, pruner, accuracy in (
        ("a", "adam", "magnitude", 95),
        ("b", "adamw", "magnitude", 95),
        ("c", "sgd", "magnitude", 80),
        ("d", "adamw", "movement", 80),
    ):
        for seed, correct in enumerate(spread_correct(accuracy, spread=0.5)):
            write(tmp_path / "runs", f"{name}{seed}", optimizer, seed, correct, pruner=pruner)
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
    assert "Differences to the best smaller than about" in md and "multiple comparisons with the best" in md
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
    assert rows["adam + magnitude"]["rank"] is None and rows["adam + magnitude"]["accuracy_interval_test_set_only"]
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
    from prunekit.core.config.settings import RunConfig
    from prunekit.core.run.runner import run

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
