"""The report's opening **Findings**, written from the data.

Per table: which rows are tied with the best; per method: the bytes it keeps per
prunable weight (exact ledger); the runs excluded for missing their target; and how
much the measured memory differs between methods compared with its own run-to-run
spread.
"""

from __future__ import annotations

import statistics

from prunekit.report.compare import TableStats
from prunekit.report.memory import MemoryFigure, MiB, kept_per_weight
from prunekit.report.table import GroupKey, Row


def _acc(row: Row) -> str:
    return f"{row.method} {row.compared_stats.accuracy.format(1)}%"


def ties(group: GroupKey, table: TableStats, rows: list[Row]) -> str:
    """One sentence: who is tied with the best in this table, and who has no verdict."""
    lone = ""
    if table.one_seed:
        lone = (
            f" {len(table.one_seed)} row(s) ran one seed, and one seed cannot separate a method from its luck: "
            "no verdict for them (their intervals cover the test set only)."
        )
    if table.best is None:
        if table.one_seed:
            top = max(table.one_seed, key=lambda r: r.compared_stats.accuracy.estimate)
            return f"{group.title}: no row is called better or worse; highest mean {_acc(top)} (test set only).{lone}"
        return f"{group.title}: nothing compared (every row is flagged or lacks per-example results)."
    compared = table.comparisons + 1
    if compared == 1:
        return f"{group.title}: one row with a verdict, {_acc(table.best)}.{lone}"
    others = [r for r in table.tied if r is not table.best]
    if not others:
        rest = "the other row is" if compared == 2 else f"the other {compared - 1} rows are"
        return f"{group.title}: {_acc(table.best)} is best; {rest} shown to be worse (family-wise 5%).{lone}"
    if len(table.tied) == compared:
        every = "both rows with a verdict are" if compared == 2 else f"all {compared} rows with a verdict are"
        return f"{group.title}: {every} tied (none is shown to be worse than the best); highest mean {_acc(table.best)}.{lone}"
    names = "; ".join(_acc(r) for r in table.tied)
    return f"{group.title}: {len(table.tied)} of {compared} rows tied with the best: {names}.{lone}"


def bytes_per_weight(groups: dict[GroupKey, list[Row]]) -> list[str]:
    """Per model: what each method keeps per prunable weight, from the exact ledger."""
    per_model: dict[str, dict[str, dict[str, float]]] = {}
    for group, rows in groups.items():
        for row in rows:
            for run in row.completed:
                kept = kept_per_weight(run.completed_summary)
                if kept is not None:
                    per_model.setdefault(group.model, {}).setdefault(f"{row.optimizer} + {row.pruner}", kept)
    out = []
    for model, methods in sorted(per_model.items()):
        parts = []
        for method, kept in sorted(methods.items(), key=lambda kv: (sum(kv[1].values()), kv[0])):
            detail = ", ".join(f"{v:g} {k.replace('_', ' ')}" for k, v in kept.items() if v)
            parts.append(f"{method} {sum(kept.values()):g} ({detail})")
        out.append(f"Bytes kept per prunable weight of {model} (exact ledger): " + "; ".join(parts) + ".")
    return out


def excluded(groups: dict[GroupKey, list[Row]]) -> list[str]:
    """Runs that missed their target sparsity, and failed runs; none of them is ranked."""
    missed = [
        f"{run.name} ({row.method}, target {100 * row.group.target:g}%, achieved {100 * run.completed_summary['achieved_sparsity']:.1f}%)"
        for rows in groups.values()
        for row in rows
        for run in row.completed
        if not run.completed_summary["target_reached"]
    ]
    failed = sum(len(row.failed) for rows in groups.values() for row in rows)
    out = [
        f"Excluded for missing their target sparsity ({len(missed)}): " + "; ".join(missed) + "."
        if missed
        else "Every completed run reached its target sparsity (within 0.5 point)."
    ]
    if failed:
        out.append(f"{failed} run(s) failed; their rows are flagged and not ranked.")
    return out


def memory_spread(group: GroupKey, rows: list[Row], fig: MemoryFigure) -> str | None:
    """Difference of mean peak between methods against the largest seed-to-seed range of one method."""
    peaks = {r.method: [v[0] / MiB for run in r.completed if (v := fig.values(run))] for r in rows if not r.flagged}
    peaks = {m: p for m, p in peaks.items() if p}
    if len(peaks) < 2:
        return None
    means = {m: statistics.fmean(p) for m, p in peaks.items()}
    low, high = min(means, key=means.__getitem__), max(means, key=means.__getitem__)
    difference = means[high] - means[low]
    text = (
        f"{group.title}: peak {fig.label} differs by {difference:,.1f} MiB between methods "
        f"({low} {means[low]:,.1f}, {high} {means[high]:,.1f} MiB)"
    )
    ranges = [max(p) - min(p) for p in peaks.values() if len(p) > 1]
    if not ranges:
        return text + "; run-to-run spread unknown (one seed per method)."
    spread = max(ranges)
    verdict = "larger than" if difference > spread else "not larger than"
    return text + f"; seeds of one method differ by up to {spread:,.1f} MiB: the difference is {verdict} its run-to-run spread."


def findings(groups: dict[GroupKey, list[Row]], tables: dict[GroupKey, TableStats], measured: MemoryFigure | None) -> list[str]:
    """Every finding, in reading order."""
    out = [ties(group, tables[group], rows) for group, rows in groups.items()]
    out += bytes_per_weight(groups)
    out += excluded(groups)
    skipped = [
        f"{row.method} at {100 * group.target:g}% ({reason.removeprefix('not compared: ')})"
        for group, table in tables.items()
        for row, reason in table.not_compared
    ]
    if skipped:
        out.append(f"Not compared ({len(skipped)} rows): " + "; ".join(skipped) + ".")
    if measured is not None:
        spreads = [s for group, rows in groups.items() if (s := memory_spread(group, rows, measured))]
        out += spreads
        if spreads and measured.scope == "process":
            out.append("Process RSS is mostly the torch runtime, not the method: the ledger above is the exact figure.")
    return out
