"""The report's statistics: time for a digits-sized table, and interval coverage by simulation.

Prints one JSON object:

- ``table_s``: one table of 20 rows x 3 seeds on 359 test examples (the size of
  ``make run``'s largest), bootstrap plus every comparison the ranking makes;
- ``naive_ratio``: a per-replicate Python loop over the same data, timed on a
  fraction of the replicates and scaled, divided by ``table_s``;
- ``coverage``: how often the 95% interval of the mean holds the population mean
  when test examples and seeds are drawn from known distributions (logistic model:
  example difficulty ~ N(3, 1.5), seed shift ~ N(0, sd)), per seed count and sd.

Usage: python benchmarks/bench_report_stats.py [--trials N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _quick import parse_args

from prunekit.report.stats import Bootstrap, holm


def correlated_runs(rng: np.random.Generator, rows: int, seeds: int, n: int) -> np.ndarray:
    difficulty = rng.normal(3.0, 1.5, size=n)
    skill = rng.normal(0, 0.3, size=(rows, 1, 1)) + rng.normal(0, 0.15, size=(rows, seeds, 1))
    probs = 1 / (1 + np.exp(-(difficulty + skill)))
    return (rng.random((rows, seeds, n)) < probs).reshape(rows * seeds, n)


def time_table(rows: int = 20, seeds: int = 3, n: int = 359) -> tuple[float, float]:
    correct = correlated_runs(np.random.default_rng(0), rows, seeds, n)
    start = time.perf_counter()
    boot = Bootstrap(correct)
    maps = [{s: r * seeds + s for s in range(seeds)} for r in range(rows)]
    for r in range(rows):
        boot.mean(list(maps[r].values()))
    for leader in range(rows):  # the ranking's worst case: every row leads a group once
        holm([boot.difference(maps[o], maps[leader]).p_value for o in range(leader + 1, rows)])
    vectorised = time.perf_counter() - start

    replicates = 200  # the naive loop, on a fraction of the replicates
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    for _ in range(replicates):
        examples = rng.integers(0, n, size=n)
        for r in range(rows):
            picks = rng.integers(0, seeds, size=seeds)
            correct[r * seeds + picks][:, examples].mean()
    naive = (time.perf_counter() - start) * boot.replicates / replicates
    return vectorised, naive


def coverage(trials: int, seeds: int, seed_sd: float, n: int = 359) -> float:
    rng = np.random.default_rng(42)
    d, s = rng.normal(3.0, 1.5, size=400_000), rng.normal(0, seed_sd, size=400_000)
    truth = 100 * float(np.mean(1 / (1 + np.exp(-(d + s)))))
    hits = 0
    for trial in range(trials):
        difficulty = rng.normal(3.0, 1.5, size=n)
        shift = rng.normal(0, seed_sd, size=(seeds, 1))
        correct = rng.random((seeds, n)) < 1 / (1 + np.exp(-(difficulty + shift)))
        interval = Bootstrap(correct, replicates=2000, seed=trial).mean(list(range(seeds)))
        hits += interval.low <= truth <= interval.high
    return hits / trials


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200, help="simulated test sets per coverage figure")
    args = parse_args(parser, quick={"trials": 40})
    vectorised, naive = time_table()
    cover = {
        f"seeds={k} seed_sd={sd}": coverage(args.trials, k, sd) for k, sd in ((1, 0.0), (3, 0.0), (3, 0.3), (3, 1.0), (5, 1.0))
    }
    print(
        json.dumps(
            {
                "table_s": round(vectorised, 3),
                "naive_ratio": round(naive / vectorised, 1),
                "coverage_of_95pct_interval": cover,
                "trials": args.trials,
            }
        )
    )


if __name__ == "__main__":
    main()
