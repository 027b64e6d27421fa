"""Intervals, ties with the best and shared ranks for the rows of each table.

A table's rows are compared only when they were scored on one test set (same
fingerprint: the same examples in the same order). The verdicts come from
:mod:`prunekit.report.best`: rows with two or more seeds are compared with the best
(family-wise error at most ``alpha``, the choice of the best included); a row not shown
to be beaten is **tied with the best** and shares rank 1. The rows left are ranked the
same way among themselves, with the same simultaneous critical value (competition
ranking: 1, 1, 3, ...). A row with one seed gets a test-set-only interval and no verdict:
one seed cannot separate a method from its luck.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from prunekit.core.rundir.outcomes import Outcomes
from prunekit.report.best import Verdicts, table_verdicts
from prunekit.report.load import RunRecord
from prunekit.report.stats import ALPHA, DRAWS, Interval
from prunekit.report.table import GroupKey, Row

METHOD = (
    "multiple comparisons with the best: seed-level variance from each row's seeds (k - 1 degrees of freedom) plus the "
    "test set's shared luck, every pair studentised; critical value of the largest pair statistic from {draws:,} draws "
    "(fixed seed), family-wise alpha = {alpha:g} including the choice of the best; one-seed rows: test-set-only interval, no verdict"
)


@dataclass
class RowStats:
    """One row's interval and its comparison with the table's best."""

    accuracy: Interval
    seeds: tuple[int, ...]
    test_set_only: bool = False  # one seed: the interval holds the test set's luck, not the seed's
    to_best: Interval | None = None  # None for the best row and for rows without a verdict
    p_adjusted: float | None = None
    tied_with_best: bool | None = None  # None: no verdict (one seed)


@dataclass
class TableStats:
    """What the comparison of one table used and found."""

    test_examples: int | None = None
    fingerprint: str | None = None
    best: Row | None = None  # the highest mean among rows with a verdict
    tied: list[Row] = field(default_factory=list)  # the best and every row tied with it
    comparisons: int = 0  # rows with a verdict, less the best
    critical: float | None = None
    detectable: float | None = None  # about the smallest difference (points) found with 80% power
    one_seed: list[Row] = field(default_factory=list)  # compared rows without a verdict
    not_compared: list[tuple[Row, str]] = field(default_factory=list)


def _outcomes(run: RunRecord) -> Outcomes:
    """A compared run's per-example results (every compared run has them)."""
    if run.outcomes is None:
        raise TypeError(f"run {run.name} has no per-example test results")
    return run.outcomes


def _candidates(rows: list[Row], table: TableStats) -> list[Row]:
    """Unflagged rows whose every run has per-example results on the table's test set."""
    eligible = [r for r in rows if not r.flagged and r.completed]
    prints = Counter(run.outcomes.fingerprint for r in eligible for run in r.completed if run.outcomes)
    table.fingerprint = prints.most_common(1)[0][0] if prints else None
    kept = []
    for row in eligible:
        if any(run.outcomes is None for run in row.completed):
            reason = "not compared: no per-example test results (test_correct.bin) in every run"
        elif any(_outcomes(run).fingerprint != table.fingerprint for run in row.completed):
            reason = "not compared: scored on a different test set (fingerprint differs)"
        else:
            kept.append(row)
            continue
        row.flags.append(reason)
        table.not_compared.append((row, reason))
    if kept:
        table.test_examples = _outcomes(kept[0].completed[0]).n
    return kept


def _number(x: float | np.ndarray) -> float | None:
    value = float(x)
    return None if math.isnan(value) else value


def _rank(rows: list[Row], v: Verdicts, table: TableStats) -> None:
    """Rank 1: the best and the rows tied with it; then the same among the rows left."""
    judged = [i for i in range(len(rows)) if v.judged[i]]
    table.one_seed = [rows[i] for i in range(len(rows)) if not v.judged[i]]
    if not judged:
        return
    table.best = rows[int(v.best)]
    table.comparisons = len(judged) - 1
    table.critical, table.detectable = _number(v.critical), _number(v.detectable)
    c = v.critical if table.comparisons else math.inf
    remaining = sorted(judged, key=lambda i: -v.mean[i])  # stable: table order breaks exact ties
    rank = 1
    while remaining:
        group = [i for i in remaining if max(v.gaps[i, j] for j in remaining if j != i) <= c] if len(remaining) > 1 else remaining
        for i in group:
            rows[i].rank = rank
        if rank == 1:
            table.tied = [rows[i] for i in sorted(group, key=lambda i: -v.mean[i])]
        rank += len(group)
        remaining = [i for i in remaining if i not in group]


def analyse(groups: dict[GroupKey, list[Row]], alpha: float = ALPHA, draws: int = DRAWS) -> dict[GroupKey, TableStats]:
    """Give every comparable row its interval, tie and rank; return what each table used."""
    tables = {group: TableStats() for group in groups}
    for group, rows in groups.items():
        candidates = _candidates(rows, tables[group])
        if candidates:
            runs = [run for row in candidates for run in row.completed]
            index = {id(run): i for i, run in enumerate(runs)}
            members = [[index[id(run)] for run in row.completed] for row in candidates]
            v = table_verdicts(np.stack([_outcomes(run).correct for run in runs]), members, alpha, draws)
            for i, row in enumerate(candidates):
                seeds = tuple(sorted(int(run.get("seed") or 0) for run in row.completed))
                stats = RowStats(Interval(float(v.mean[i]), float(v.low[i]), float(v.high[i])), seeds, not v.judged[i])
                if v.judged[i]:
                    stats.tied_with_best = bool(v.tied[i] == 1)
                    if i != int(v.best):
                        stats.to_best = Interval(float(v.diff[i]), float(v.diff_low[i]), float(v.diff_high[i]))
                        stats.p_adjusted = float(v.p[i])
                row.stats = stats
            _rank(candidates, v, tables[group])
        rows.sort(
            key=lambda r: (r.rank is None, r.rank or 0, -(r.stats.accuracy.estimate if r.stats else 0), r.optimizer, r.pruner)
        )
    return tables
