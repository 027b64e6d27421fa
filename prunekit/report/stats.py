"""A table's row means and the two sources of their luck, from per-example test outcomes.

A row is one method over ``k`` seeds, every run scored on one shared test set of ``n``
examples; ``y`` is the row's mean accuracy (points). Its luck has two parts:

- **seed level**, which seeds were run: each run's accuracy carries its own seed luck and its
  own per-example noise, and the sample variance ``s^2`` of the ``k`` run accuracies
  estimates both at once; ``v = s^2 / k`` is their variance in the mean, estimated with
  ``k - 1`` degrees of freedom (none with one seed);
- **test-set level**, which examples the test set holds: shared by every run scored on it,
  so invisible between seeds. Between rows ``a`` and ``b`` it is the covariance
  ``S_ab = Cov_e(c_a, c_b) / n`` of their per-example correctness averaged over seeds
  (``c_a``), runs of different rows being distinct. On the diagonal only pairs of distinct
  runs count, ``S_aa = (k^2 Cov_e(c_a, c_a) - sum_j Var_e(c_aj)) / (k (k - 1) n)``: a run's own
  per-example noise is already in ``s^2`` and is not counted twice.

Every function takes arrays with any leading batch axes (one table, or many simulated ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

ALPHA = 0.05
#: Draws of the seed- and test-level luck per table (prunekit.report.best).
DRAWS = 4_000
RNG_SEED = 2026
POWER = 0.8


@dataclass(frozen=True)
class Interval:
    """A point estimate (percentage points) and its 95% interval."""

    estimate: float
    low: float
    high: float

    def format(self, digits: int = 2, signed: bool = False) -> str:
        sign = "+" if signed else ""
        return f"{self.estimate:{sign}.{digits}f} [{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}]"


@dataclass(frozen=True)
class Summary:
    """What the comparison needs of a table: arrays over (..., rows), in points and points squared."""

    mean: np.ndarray  # (..., m) row mean accuracy
    seed_var: np.ndarray  # (..., m) v = s^2 / k; nan where k = 1
    shared: np.ndarray  # (..., m, m) S, the test-set covariance of the row means; diagonal nan where k = 1
    seeds: np.ndarray  # (m,) k per row
    n: int  # test examples


def summarise(correct: np.ndarray, rows: Sequence[Sequence[int]]) -> Summary:
    """``correct``: (..., runs, n) booleans, one run per seed; ``rows``: the run indices of each row."""
    correct = np.asarray(correct, dtype=bool)
    n = correct.shape[-1]
    if n < 2 or not rows or any(not r for r in rows):
        raise ValueError("a comparison needs at least two test examples and one run per row")
    k = np.array([len(r) for r in rows])
    accuracy = correct.mean(axis=-1, dtype=np.float64)  # (..., runs), fractions
    per_example = np.stack([correct[..., list(r), :].mean(axis=-2, dtype=np.float64) for r in rows], axis=-2)
    row_mean = per_example.mean(axis=-1)
    cov = (per_example @ np.swapaxes(per_example, -1, -2) / n - row_mean[..., :, None] * row_mean[..., None, :]) * (n / (n - 1))
    run_var = accuracy * (1 - accuracy) * (n / (n - 1))
    seed_var = np.full(row_mean.shape, np.nan)
    within = np.full(row_mean.shape, np.nan)
    for i, r in enumerate(rows):
        if len(r) > 1:
            ki = len(r)
            seed_var[..., i] = accuracy[..., list(r)].var(axis=-1, ddof=1) / ki
            within[..., i] = (ki**2 * cov[..., i, i] - run_var[..., list(r)].sum(axis=-1)) / (ki * (ki - 1))
    shared = cov.copy()
    diagonal = np.arange(len(rows))
    shared[..., diagonal, diagonal] = within
    return Summary(100.0 * row_mean, 1e4 * seed_var, 1e4 * shared / n, k, n)


def wilson_interval(mean: np.ndarray, n: int, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (points) of one run's accuracy: the test set's luck only, no seed's."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = np.asarray(mean, dtype=np.float64) / 100.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100.0 * np.clip(centre - half, 0, 1), 100.0 * np.clip(centre + half, 0, 1)
