"""Intervals, paired comparisons, ties and shared ranks for the rows of each table.

A table's rows are compared only when they were scored on one test set (same
fingerprint: the same examples in the same order). The best row is the one with the
highest mean final accuracy; every other row is compared with it (paired by example
and by seed value) and the p-values are Holm-corrected: a row whose difference is
not significant at ``alpha`` is **tied with the best** and shares rank 1. The rows
left are ranked the same way among themselves: their best and the rows tied with it
share the next rank (competition ranking: 1, 1, 3, ...).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from prunekit.report.stats import ALPHA, REPLICATES, Bootstrap, Comparison, Interval, detectable_difference, holm
from prunekit.report.table import GroupKey, Row

METHOD = (
    "hierarchical bootstrap ({replicates:,} replicates, fixed seed) over seeds and test examples, "
    "paired by test example and seed value; Holm correction over the comparisons with the best at alpha = {alpha:g}"
)


@dataclass
class RowStats:
    """One row's interval and its comparison with the table's best."""

    accuracy: Interval
    seeds: tuple[int, ...]
    to_best: Comparison | None = None  # None for the best row itself
    p_holm: float | None = None
    tied_with_best: bool = False


@dataclass
class TableStats:
    """What the comparison of one table used and found."""

    test_examples: int | None = None
    fingerprint: str | None = None
    best: Row | None = None
    tied: list[Row] = field(default_factory=list)  # the best and every row tied with it
    comparisons: int = 0
    detectable: float | None = None  # about the smallest difference (points) the comparisons detect
    not_compared: list[tuple[Row, str]] = field(default_factory=list)


def _seed_map(row: Row, runs: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for run, index in zip(row.completed, runs, strict=True):
        seed = int(run.get("seed") or 0)
        while seed in out:  # two runs of one seed (should not happen): keep both, unpaired
            seed += 1_000_000
        out[seed] = index
    return out


def _candidates(rows: list[Row], table: TableStats) -> list[Row]:
    """Unflagged rows whose every run has per-example results on the table's test set."""
    eligible = [r for r in rows if not r.flagged and r.completed]
    prints = Counter(run.outcomes.fingerprint for r in eligible for run in r.completed if run.outcomes)
    table.fingerprint = prints.most_common(1)[0][0] if prints else None
    kept = []
    for row in eligible:
        if any(run.outcomes is None for run in row.completed):
            reason = "not compared: no per-example test results (test_correct.bin) in every run"
        elif any(run.outcomes.fingerprint != table.fingerprint for run in row.completed):
            reason = "not compared: scored on a different test set (fingerprint differs)"
        else:
            kept.append(row)
            continue
        row.flags.append(reason)
        table.not_compared.append((row, reason))
    if kept:
        table.test_examples = kept[0].completed[0].outcomes.n
    return kept


def _rank(rows: list[Row], seeds: dict[int, dict[int, int]], boot: Bootstrap, alpha: float, table: TableStats) -> None:
    remaining = sorted(rows, key=lambda r: -r.stats.accuracy.estimate)  # stable: table order breaks exact ties
    rank = 1
    while remaining:
        leader, others = remaining[0], remaining[1:]
        found = boot.differences([seeds[id(o)] for o in others], seeds[id(leader)])
        adjusted = holm([c.p_value for c in found])
        group = [leader] + [o for o, p in zip(others, adjusted, strict=True) if p > alpha]
        if rank == 1:
            table.best, table.tied, table.comparisons = leader, group, len(others)
            leader.stats.tied_with_best = True
            for other, comparison, p in zip(others, found, adjusted, strict=True):
                other.stats.to_best, other.stats.p_holm, other.stats.tied_with_best = comparison, p, p > alpha
            table.detectable = detectable_difference([c.difference.se for c in found], len(others), alpha)
        for row in group:
            row.rank = rank
        rank += len(group)
        taken = {id(r) for r in group}
        remaining = [r for r in remaining if id(r) not in taken]


def analyse(groups: dict[GroupKey, list[Row]], alpha: float = ALPHA, replicates: int = REPLICATES) -> dict[GroupKey, TableStats]:
    """Give every comparable row its interval, tie and rank; return what each table used."""
    tables = {group: TableStats() for group in groups}
    for group, rows in groups.items():
        candidates = _candidates(rows, tables[group])
        if candidates:
            runs = [run for row in candidates for run in row.completed]
            boot = Bootstrap(np.stack([run.outcomes.correct for run in runs]), replicates, alpha=alpha)
            index = {id(run): i for i, run in enumerate(runs)}
            seeds = {id(row): _seed_map(row, [index[id(run)] for run in row.completed]) for row in candidates}
            intervals = boot.means([list(seeds[id(row)].values()) for row in candidates])
            for row, interval in zip(candidates, intervals, strict=True):
                row.stats = RowStats(interval, tuple(sorted(seeds[id(row)])))
            _rank(candidates, seeds, boot, alpha, tables[group])
        rows.sort(
            key=lambda r: (r.rank is None, r.rank or 0, -(r.stats.accuracy.estimate if r.stats else 0), r.optimizer, r.pruner)
        )
    return tables
