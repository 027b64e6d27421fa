"""Per-example test outcomes drawn from a model whose truth is known, to calibrate the report's statistics.

One simulated table: a test set of ``n`` examples drawn afresh, example ``e`` with difficulty
``d_e ~ N(3, 1.5)`` (the logit of being right; about 90% accuracy), ``m`` methods with logit
shifts ``a_i``, ``k`` seeds each with run-to-run luck ``s_ij ~ N(0, tau)`` on the logit. Run
``(i, j)`` gets example ``e`` right with probability ``sigmoid(d_e + a_i + s_ij)``.

The truth: a method's mean accuracy is ``E sigmoid(d + a_i + s)`` over the population of
examples and seeds; one run's own accuracy is ``E_d sigmoid(d + a_i + s_ij)`` (what a one-seed,
test-set-only interval is about). Both by Gauss-Hermite quadrature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

DIFFICULTY_MEAN, DIFFICULTY_SD = 3.0, 1.5


@cache
def _nodes(count: int = 96) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(count)  # weight exp(-x^2 / 2)
    return x, w / w.sum()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def run_accuracy(logit_shift: np.ndarray) -> np.ndarray:
    """Population accuracy (points) of runs whose total logit shift (method + luck) is given."""
    x, w = _nodes()
    shift = np.asarray(logit_shift, dtype=np.float64)[..., None]
    out: np.ndarray = 100.0 * (_sigmoid(DIFFICULTY_MEAN + DIFFICULTY_SD * x + shift) * w).sum(-1)
    return out


def method_accuracy(shift: float, tau: float) -> float:
    """A method's true mean accuracy (points): over examples and over seed luck ``N(0, tau)``."""
    x, w = _nodes()
    return float((run_accuracy(shift + tau * x) * w).sum())


def seed_spread(tau: float) -> float:
    """Standard deviation (points) of one run's population accuracy across seeds."""
    x, w = _nodes()
    acc = run_accuracy(tau * x)
    return float(np.sqrt((w * (acc - (w * acc).sum()) ** 2).sum()))


def _solve(f: Callable[[float], float], target: float, low: float, high: float) -> float:
    for _ in range(80):  # bisection; f increasing
        mid = (low + high) / 2
        low, high = (mid, high) if f(mid) < target else (low, mid)
    return (low + high) / 2


@cache
def tau_for_spread(points: float) -> float:
    """The logit luck ``tau`` whose seed-to-seed spread is ``points``."""
    return 0.0 if points <= 0 else _solve(seed_spread, points, 0.0, 10.0)


@cache
def shift_below(points: float, tau: float) -> float:
    """The logit shift that makes a method's true mean ``points`` lower than an unshifted one's."""
    target = method_accuracy(0.0, tau) - points
    return _solve(lambda a: method_accuracy(a, tau), target, -10.0, 0.0)


@cache
def _truth(methods: int, below: float, tau: float) -> np.ndarray:
    out = np.full(methods, method_accuracy(0.0, tau))
    if below:
        out[-1] -= below
    return out


@dataclass(frozen=True)
class Regime:
    """One cell of the calibration table."""

    n: int  # test examples
    seeds: int
    spread: float  # seed-to-seed spread of a run's accuracy, points
    methods: int
    below: float = 0.0  # the last method's true mean is this many points lower

    @property
    def tau(self) -> float:
        return tau_for_spread(self.spread)

    def shifts(self) -> np.ndarray:
        out = np.zeros(self.methods)
        if self.below:
            out[-1] = shift_below(self.below, self.tau)
        return out

    def truth(self) -> np.ndarray:
        """(methods,) true mean accuracy, points."""
        return _truth(self.methods, self.below, self.tau)

    def rows(self) -> list[list[int]]:
        """Run indices per method: method i's seeds are runs i*k .. i*k + k - 1."""
        return [list(range(i * self.seeds, (i + 1) * self.seeds)) for i in range(self.methods)]


def simulate(rng: np.random.Generator, regime: Regime, reports: int) -> tuple[np.ndarray, np.ndarray]:
    """``reports`` tables: (reports, methods * seeds, n) correctness and (reports, methods, seeds) run truths."""
    m, k, n = regime.methods, regime.seeds, regime.n
    luck = regime.shifts()[None, :, None] + regime.tau * rng.standard_normal((reports, m, k))
    difficulty = (DIFFICULTY_MEAN + DIFFICULTY_SD * rng.standard_normal((reports, 1, n))).astype(np.float32)
    logits = difficulty + luck.reshape(reports, m * k, 1).astype(np.float32)
    correct = rng.random((reports, m * k, n), dtype=np.float32) < _sigmoid(logits)
    return correct, run_accuracy(luck)
