"""Comparison with the best whose family-wise error includes the choice of the best.

Rows with at least two seeds get a verdict (one seed cannot tell a method from its luck).
For every ordered pair of them (summaries from :mod:`prunekit.report.stats`)

    T_ab = (y_b - y_a) / se_ab,   se_ab^2 = v_a + v_b + S_aa + S_bb - 2 S_ab

(the test-set part of a difference is what does not cancel on the shared examples). Row ``a``
is **tied with the best** unless some row beats it, ``max_b T_ab > c``. The critical value ``c``
is the ``1 - alpha`` quantile of ``max_{a != b} T_ab`` when every row has the same true mean
(the least favourable case), from ``DRAWS`` draws of the table's fitted model

    e_a = sqrt(v_a) Z_a + W_a,   se*_ab^2 = v_a X_a + v_b X_b + S_aa + S_bb - 2 S_ab

with ``Z ~ N(0, 1)``, ``X ~ chi2(k_a - 1) / (k_a - 1)`` (a variance estimated from ``k_a`` seeds:
t tails with ``k_a - 1`` degrees of freedom) and ``W ~ N(0, S)`` (estimated from ``n`` examples).
The maximum runs over every pair, so every draw picks its own best: all the "not tied"
verdicts of a table are right together with probability at least ``1 - alpha``, whichever
row the data crown. The same ``c`` gives simultaneous intervals
``mu_a - mu_b in y_a - y_b +- c se_ab``, hence the difference from the best of the others,
``mu_a - max_{b != a} mu_b in [min_b (y_a - y_b - c se_ab), min_b (y_a - y_b + c se_ab)]``,
whose upper end is below 0 exactly when the row is not tied. A row's mean: see
:func:`mean_half_width`. One-seed rows get the test-set-only (Wilson) interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.stats import t as student_t  # type: ignore[import-untyped]

from prunekit.report.stats import ALPHA, DRAWS, POWER, RNG_SEED, summarise, wilson_interval

_CHUNK = 1 << 22  # draws x pairs computed at once


@dataclass(frozen=True)
class Verdicts:
    """Per table (leading axes) and row (last axis); nan where a row has no verdict."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    judged: np.ndarray  # (m,) rows with two or more seeds
    best: np.ndarray  # index of the highest judged mean; -1 when no row is judged
    critical: np.ndarray  # c; nan with fewer than two judged rows
    tied: np.ndarray  # 1 tied with the best, 0 not, nan no verdict
    p: np.ndarray  # family-wise adjusted p-value of "not tied"; nan for the best and unjudged rows
    diff: np.ndarray  # y_a - y_best; nan for the best and unjudged rows
    diff_low: np.ndarray  # the simultaneous interval of mu_a - max_{b != a} mu_b
    diff_high: np.ndarray
    gaps: np.ndarray  # (..., m, m) T_ab observed; nan outside the judged rows
    detectable: np.ndarray  # about the difference to the best found with POWER; nan when none


def _rank(values: np.ndarray, q: float, axis: int) -> np.ndarray:
    """The order statistic of rank ceil(q (D + 1)): exchangeable with the draws, it keeps ``q`` exactly."""
    d = values.shape[axis]
    r = min(d, math.ceil(q * (d + 1))) - 1
    out: np.ndarray = np.take(np.partition(values, r, axis=axis), r, axis=axis)
    return out


def mean_half_width(v: np.ndarray, shared: np.ndarray, seeds: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Half-width of a row mean's interval: the two parts' own half-widths combined in quadrature.

    ``sqrt(t^2 v + z^2 S_aa)``, ``t`` Student's quantile with ``k - 1`` degrees of freedom (the seed
    part), ``z`` the normal one (the test-set part, estimated from many examples). Unlike a
    Satterthwaite interval it does not narrow when a few seeds happen to agree.
    """
    t = student_t.ppf(1 - alpha / 2, seeds - 1)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    half: np.ndarray = np.sqrt(t * t * np.clip(v, 0, None) + z * z * np.clip(shared, 0, None))
    return half


def _draws(seeds: np.ndarray, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, *seeds.tolist()])
    m = len(seeds)
    z = rng.standard_normal((m, draws)).astype(np.float32)
    x = (rng.chisquare((seeds - 1)[:, None], size=(m, draws)) / (seeds - 1)[:, None]).astype(np.float32)
    xi = rng.standard_normal((m, draws)).astype(np.float32)
    return z, x, xi


def _judge(
    y: np.ndarray, v: np.ndarray, s: np.ndarray, seeds: np.ndarray, z: np.ndarray, x: np.ndarray, xi: np.ndarray, alpha: float
) -> dict[str, np.ndarray]:
    """The verdicts of a chunk of tables, (b, m) arrays of judged rows only."""
    b, m = y.shape
    eye = np.eye(m, dtype=bool)
    diag = np.diagonal(s, axis1=-2, axis2=-1)
    shd = np.clip(diag[:, :, None] + diag[:, None, :] - 2 * s, 0, None)
    se = np.sqrt(v[:, :, None] + v[:, None, :] + shd)
    gap = y[:, None, :] - y[:, :, None]  # [a, b] = y_b - y_a
    with np.errstate(divide="ignore", invalid="ignore"):
        t_obs = np.where(se > 0, gap / se, np.sign(gap) * np.inf)
    t_obs = np.where(eye, -np.inf, np.nan_to_num(t_obs, nan=0.0, posinf=np.inf, neginf=-np.inf))
    worst = t_obs.max(axis=-1) if m > 1 else np.full((b, m), -np.inf)

    values, vectors = np.linalg.eigh(s)
    root = (vectors * np.sqrt(np.clip(values, 0, None))[:, None, :]).astype(np.float32)
    e = np.sqrt(v)[:, :, None].astype(np.float32) * z + np.matmul(root, xi)  # (b, m, D): draws last
    u = v[:, :, None].astype(np.float32) * x
    half = mean_half_width(v, diag, seeds, alpha)
    best = np.argmax(y, axis=-1)
    out = {"low": np.clip(y - half, 0, 100), "high": np.clip(y + half, 0, 100), "best": best, "gaps": t_obs}
    if m == 1:
        return out | {"critical": np.full(b, np.nan), "tied": np.ones((b, 1)), "detectable": np.full(b, np.nan)}

    # T*_ab = -T*_ba: the largest over ordered pairs is the largest |T*| over the pairs a < b
    first, second = np.triu_indices(m, 1)
    shd32 = shd.astype(np.float32) + np.float32(1e-9)
    den = u[:, first] + u[:, second]
    den += shd32[:, first, second][:, :, None]
    np.sqrt(den, out=den)
    t = e[:, second] - e[:, first]
    np.abs(t, out=t)
    t /= den
    top = t.max(axis=1)  # (b, D)
    c = _rank(top, 1 - alpha, axis=-1)
    rows = np.arange(b)
    e_best, u_best = e[rows, best][:, None], u[rows, best][:, None]
    to_best = (e_best - e) / np.sqrt(u_best + u + shd32[rows, best][:, :, None])  # (b, m, D)
    se_best = se[rows, :, best]
    found = (c[:, None] + _rank(to_best, POWER, axis=-1)) * se_best
    found[rows, best] = np.nan
    lead = -gap  # [a, b] = y_a - y_b
    bound = np.where(eye, np.inf, c[:, None, None] * se)
    return out | {
        "critical": c,
        "tied": (worst <= c[:, None]).astype(np.float64),
        "p": (1 + (top[:, None, :] >= worst[:, :, None]).sum(axis=-1)) / (top.shape[-1] + 1),
        "diff": -gap[rows, :, best],
        "diff_low": np.where(eye, np.inf, lead - bound).min(axis=-1),
        "diff_high": np.where(eye, np.inf, lead + bound).min(axis=-1),
        "detectable": np.nanmedian(found, axis=-1),
    }


def table_verdicts(
    correct: np.ndarray, rows: Sequence[Sequence[int]], alpha: float = ALPHA, draws: int = DRAWS, seed: int = RNG_SEED
) -> Verdicts:
    """Intervals and verdicts of the rows of (..., runs, n) per-example outcomes on one test set."""
    s = summarise(correct, rows)
    batch, m = s.mean.shape[:-1], len(rows)
    judged = s.seeds >= 2
    low, high = wilson_interval(s.mean, s.n, alpha)
    full = {k: np.full(batch + (m,), np.nan) for k in ("tied", "p", "diff", "diff_low", "diff_high")}
    gaps = np.full(batch + (m, m), np.nan)
    best, critical, detectable = np.full(batch, -1), np.full(batch, np.nan), np.full(batch, np.nan)
    index = np.flatnonzero(judged)
    if len(index):
        y = s.mean[..., index].reshape(-1, len(index))
        v = s.seed_var[..., index].reshape(-1, len(index))
        shared = s.shared[..., index[:, None], index[None, :]].reshape(-1, len(index), len(index))
        z, x, xi = _draws(s.seeds[index], draws, seed)
        step = max(1, _CHUNK // (draws * len(index) ** 2))
        parts = [
            _judge(y[i : i + step], v[i : i + step], shared[i : i + step], s.seeds[index], z, x, xi, alpha)
            for i in range(0, len(y), step)
        ]
        got = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        shape = batch + (len(index),)
        low[..., index], high[..., index] = got["low"].reshape(shape), got["high"].reshape(shape)
        for key in full:
            if key in got:
                full[key][..., index] = got[key].reshape(shape)
        gaps[..., index[:, None], index[None, :]] = got["gaps"].reshape(batch + (len(index), len(index)))
        best = index[got["best"]].reshape(batch)
        critical, detectable = got["critical"].reshape(batch), got["detectable"].reshape(batch)
        diff_best = np.zeros(batch + (m,), bool)
        np.put_along_axis(diff_best, best[..., None], True, axis=-1)
        for key in ("diff", "diff_low", "diff_high", "p"):
            full[key][diff_best] = np.nan
    return Verdicts(
        s.mean,
        low,
        high,
        judged,
        best,
        critical,
        full["tied"],
        full["p"],
        full["diff"],
        full["diff_low"],
        full["diff_high"],
        gaps,
        detectable,
    )
