"""Accuracy intervals and paired comparisons from per-example test outcomes.

The method is a two-level (hierarchical) bootstrap over the two sources of
uncertainty in a mean test accuracy: which seeds were run, and which examples the
finite test set happens to contain. Each of ``REPLICATES`` replicates

- draws the test examples with replacement: one draw per replicate, shared by every
  run scored on that test set, so comparisons are paired example by example;
- draws the seeds with replacement: when two rows ran the same seeds, one draw
  shared by both, matched by seed value, so the comparison is paired seed by seed
  (rows with different seeds are resampled independently). The seed-level deviations are scaled by
  ``sqrt(k / (k - 1))`` so that the bootstrap's seed variance is the unbiased one
  (the plain bootstrap shrinks it by ``(k - 1) / k``, a lot for 3 seeds).

With one seed only the test examples are resampled. Intervals are bootstrap
percentile intervals; a difference's two-sided p-value is twice the share of
replicates on the far side of zero (CI inversion). Random numbers come from a fixed
seed: the same runs give the same report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

ALPHA = 0.05
REPLICATES = 10_000
RNG_SEED = 2026
POWER = 0.8
#: Bootstrap draws are made in blocks of at most this many cells.
_CHUNK_CELLS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A point estimate (percentage points) and its 95% interval."""

    estimate: float
    low: float
    high: float
    se: float

    def format(self, digits: int = 2, signed: bool = False) -> str:
        sign = "+" if signed else ""
        return f"{self.estimate:{sign}.{digits}f} [{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}]"


@dataclass(frozen=True)
class Comparison:
    """Row a minus row b, paired by example and by seed value."""

    difference: Interval
    p_value: float
    seeds: tuple[int, ...]  # the seeds paired; empty when the rows ran different seeds


class Bootstrap:
    """Bootstrap replicates of the accuracy of every run of one table (one test set).

    ``correct`` is a boolean (runs, examples) matrix, one row per run, examples in
    evaluation order.
    """

    def __init__(self, correct: np.ndarray, replicates: int = REPLICATES, seed: int = RNG_SEED, alpha: float = ALPHA):
        correct = np.asarray(correct, dtype=bool)
        runs, n = correct.shape
        if n == 0 or runs == 0:
            raise ValueError("a bootstrap needs at least one run and one test example")
        self.n, self.replicates, self.seed, self.alpha = n, replicates, seed, alpha
        self.point = 100.0 * correct.mean(axis=1)
        # Examples that every run got right (or wrong) alike are interchangeable: resampling
        # examples is resampling their correctness patterns with multinomial counts, exactly,
        # at a cost that grows with the number of distinct patterns, not with the test set.
        patterns, inverse, counts = np.unique(correct.T, axis=0, return_inverse=True, return_counts=True)
        resampled = _resample(patterns.astype(np.float64), counts, inverse.ravel(), replicates, seed)
        self.replicate_accuracy = resampled * (100.0 / n)
        self._seed_draws: dict[tuple[int, int], np.ndarray] = {}

    def _seed_counts(self, k: int, stream: int = 0) -> np.ndarray:
        key = (k, stream)
        if key not in self._seed_draws:
            rng = np.random.default_rng([self.seed, k, stream])
            self._seed_draws[key] = rng.multinomial(k, np.full(k, 1.0 / k), size=self.replicates).astype(np.float64)
        return self._seed_draws[key]

    def _over_seeds(self, values: np.ndarray, stream: int = 0) -> np.ndarray:
        """Replicates of the mean over seeds of (replicates, k) per-seed values."""
        k = values.shape[1]
        mean = values.mean(axis=1)
        if k == 1:
            return mean
        resampled = (self._seed_counts(k, stream) * values).sum(axis=1) / k
        return mean + math.sqrt(k / (k - 1)) * (resampled - mean)

    def _intervals(self, estimates: Sequence[float], replicates: np.ndarray) -> list[Interval]:
        """Percentile intervals of (replicates, m) columns, one call for all m."""
        low, high = np.percentile(replicates, [100 * self.alpha / 2, 100 * (1 - self.alpha / 2)], axis=0)
        se = replicates.std(axis=0, ddof=1)
        return [Interval(float(e), float(lo), float(hi), float(s)) for e, lo, hi, s in zip(estimates, low, high, se)]

    def mean(self, runs: Sequence[int]) -> Interval:
        """Mean accuracy of a row, in percent, over its runs (one per seed)."""
        return self.means([runs])[0]

    def means(self, rows: Sequence[Sequence[int]]) -> list[Interval]:
        """:meth:`mean` of several rows at once."""
        rows = [list(r) for r in rows]
        columns = np.stack([self._over_seeds(self.replicate_accuracy[:, r]) for r in rows], axis=1)
        columns = np.clip(columns, 0.0, 100.0)  # the seed-spread correction must not leave 0..100%
        return self._intervals([self.point[r].mean() for r in rows], columns)

    def difference(self, a: dict[int, int], b: dict[int, int]) -> Comparison:
        """Row ``a`` minus row ``b``; each maps seed value -> run index.

        Rows that ran the same seeds are paired seed by seed; otherwise each row's seeds
        are resampled independently (the test examples stay paired either way).
        """
        return self.differences([a], b)[0]

    def differences(self, rows: Sequence[dict[int, int]], b: dict[int, int]) -> list[Comparison]:
        """:meth:`difference` of several rows from one row ``b``, at once."""
        estimates, columns, paired = [], [], []
        for a in rows:
            if set(a) == set(b):
                shared = tuple(sorted(a))
                ia, ib = [a[s] for s in shared], [b[s] for s in shared]
                estimates.append(float((self.point[ia] - self.point[ib]).mean()))
                columns.append(self._over_seeds(self.replicate_accuracy[:, ia] - self.replicate_accuracy[:, ib]))
            else:
                shared = ()
                ia, ib = list(a.values()), list(b.values())
                estimates.append(float(self.point[ia].mean() - self.point[ib].mean()))
                columns.append(
                    self._over_seeds(self.replicate_accuracy[:, ia], 1) - self._over_seeds(self.replicate_accuracy[:, ib], 2)
                )
            paired.append(shared)
        if not columns:
            return []
        replicates = np.clip(np.stack(columns, axis=1), -100.0, 100.0)
        far = np.minimum((replicates <= 0).sum(axis=0), (replicates >= 0).sum(axis=0))
        p_values = np.minimum(1.0, 2.0 * (far + 1) / (self.replicates + 1))
        intervals = self._intervals(estimates, replicates)
        return [Comparison(i, float(p), s) for i, p, s in zip(intervals, p_values, paired)]


def _resample(patterns: np.ndarray, counts: np.ndarray, inverse: np.ndarray, replicates: int, seed: int) -> np.ndarray:
    """(replicates, runs) correct counts when the n examples are drawn with replacement.

    Exact multinomial counts of the distinct correctness patterns, drawn in blocks of
    replicates to bound memory: by drawing example indices when patterns are many
    (cheaper per draw), else as a chain of binomials, one per pattern, vectorised over
    the replicates (cheaper when a large test set has few patterns).
    """
    rng = np.random.default_rng(seed)
    n, kinds = int(counts.sum()), len(counts)
    by_index = n <= 4 * kinds
    block = max(1, _CHUNK_CELLS // (n if by_index else kinds))
    parts = []
    for start in range(0, replicates, block):
        m = min(block, replicates - start)
        if by_index:
            picks = inverse[rng.integers(0, n, size=(m, n))] + kinds * np.arange(m)[:, None]
            weights = np.bincount(picks.ravel(), minlength=m * kinds).reshape(m, kinds).astype(np.float64)
        else:
            weights = np.empty((m, kinds))
            left, mass = np.full(m, n, dtype=np.int64), n
            for j, count in enumerate(counts):
                weights[:, j] = draw = left if mass == count else rng.binomial(left, count / mass)
                left, mass = left - draw, mass - int(count)
        parts.append(weights @ patterns)
    return np.concatenate(parts)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down; controls the family-wise error rate)."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for position, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - position) * p_values[index]))
        adjusted[index] = running
    return adjusted


def detectable_difference(
    standard_errors: Sequence[float], comparisons: int, alpha: float = ALPHA, power: float = POWER
) -> float | None:
    """About the smallest difference (points) a comparison detects with ``power``.

    Uses the median standard error of the table's differences and the strictest Holm
    level (alpha / comparisons), a normal approximation.
    """
    if not standard_errors or comparisons < 1:
        return None
    z = NormalDist()
    factor = z.inv_cdf(1 - alpha / (2 * comparisons)) + z.inv_cdf(power)
    return factor * float(np.median(standard_errors))
