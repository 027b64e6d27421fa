"""``report.csv`` (one line per run) and ``report.json`` (the statistics per row, and every run)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from prunekit.core.rundir.files import write_atomic
from prunekit.report.compare import METHOD, TableStats
from prunekit.report.memory import Divisor
from prunekit.report.stats import ALPHA, DRAWS, RNG_SEED
from prunekit.report.table import GroupKey, Row


def _row(row: Row, divisor: Divisor | None) -> dict[str, Any]:
    s = row.stats
    difference = s.to_best if s else None
    judged = s is not None and s.tied_with_best is not None
    pruner_b, optimizer_b = row.ledger()
    return {
        "optimizer": row.optimizer,
        "pruner": row.pruner,
        "settings": row.settings,
        "method": row.method,
        "runs": len(row.runs),
        "completed": len(row.completed),
        "seeds": list(s.seeds) if s else sorted(int(r.get("seed") or 0) for r in row.completed),
        "rank": row.rank,
        "accuracy_mean": s.accuracy.estimate if s else row.final().mean,
        "accuracy_ci95": [s.accuracy.low, s.accuracy.high] if s else None,
        "accuracy_std_over_seeds": row.final().std,
        "accuracy_interval_test_set_only": s.test_set_only if s else None,
        "difference_to_best": (difference.estimate if difference else 0.0) if judged else None,
        "difference_to_best_ci95": ([difference.low, difference.high] if difference else [0.0, 0.0]) if judged else None,
        "p_adjusted": s.p_adjusted if s else None,
        "tied_with_best": s.tied_with_best if s else None,
        "best_epoch_accuracy_mean": row.best().mean,
        "target_sparsity": row.group.target,
        "achieved_sparsity_mean": row.achieved().mean,
        "pruner_state_bytes_per_prunable_weight": pruner_b.mean,
        "optimizer_state_bytes_per_prunable_weight": optimizer_b.mean,
        "accuracy_per_100mib": row.accuracy_per_100mib(divisor).mean,
        "flags": list(row.flags),
    }


def tables_json(groups: dict[GroupKey, list[Row]], tables: dict[GroupKey, TableStats], divisor: Divisor | None) -> dict[str, Any]:
    """The statistics of every table, per row."""
    return {
        "statistics": {
            "method": METHOD.format(draws=DRAWS, alpha=ALPHA),
            "alpha": ALPHA,
            "draws": DRAWS,
            "rng_seed": RNG_SEED,
            "accuracy_per_100mib_divides_by": divisor.label if divisor else None,
        },
        "tables": [
            {
                "model": group.model,
                "dataset": group.dataset,
                "target_sparsity": group.target,
                "test_examples": tables[group].test_examples,
                "test_set_fingerprint": tables[group].fingerprint,
                "one_example_points": 100 / n if (n := tables[group].test_examples) else None,
                "detectable_difference_points": tables[group].detectable,
                "comparisons": tables[group].comparisons,
                "critical_value": tables[group].critical,
                "rows_without_verdict_one_seed": [r.method for r in tables[group].one_seed],
                "tied_with_best": [r.method for r in tables[group].tied],
                "rows": [_row(r, divisor) for r in rows],
            }
            for group, rows in groups.items()
        ],
    }


def _inert(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: one starting with ``= + - @`` (a formula) gets a leading ``'``;
    numbers stay numbers."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_exports(
    directory: Path, formats: tuple[str, ...], flat: list[dict[str, Any]], statistics: dict[str, Any]
) -> list[Path]:
    """``report.csv``: the flat per-run table; ``report.json``: the statistics plus ``runs`` (that table)."""
    written = []
    if "csv" in formats:
        path = directory / "report.csv"
        columns = list(dict.fromkeys(k for r in flat for k in r))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: _inert(v) for k, v in row.items()} for row in flat)
        write_atomic(path, text.getvalue())
        written.append(path)
    if "json" in formats:
        path = directory / "report.json"
        write_atomic(path, json.dumps(statistics | {"runs": flat}, indent=1, default=str) + "\n")
        written.append(path)
    return written
