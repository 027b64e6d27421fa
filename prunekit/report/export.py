"""``report.csv`` (one line per run) and ``report.json`` (the statistics per row, and every run)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from prunekit.core.files import write_atomic
from prunekit.report.compare import METHOD, TableStats
from prunekit.report.memory import Divisor
from prunekit.report.stats import ALPHA, REPLICATES, RNG_SEED
from prunekit.report.table import GroupKey, Row


def _row(row: Row, divisor: Divisor | None) -> dict[str, Any]:
    s = row.stats
    to_best = s.to_best if s else None
    difference = to_best.difference if to_best else None
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
        "difference_to_best": (difference.estimate if difference else 0.0) if s else None,
        "difference_to_best_ci95": ([difference.low, difference.high] if difference else [0.0, 0.0]) if s else None,
        "paired_seeds": list(to_best.seeds) if to_best else None,
        "p_value": to_best.p_value if to_best else None,
        "p_holm": s.p_holm if s else None,
        "tied_with_best": s.tied_with_best if s else None,
        "best_epoch_accuracy_mean": row.best().mean,
        "target_sparsity": row.group.target,
        "achieved_sparsity_mean": row.achieved().mean,
        "pruner_state_bytes_per_prunable_weight": pruner_b.mean,
        "optimizer_state_bytes_per_prunable_weight": optimizer_b.mean,
        "accuracy_per_100mib": row.accuracy_per_100mib(divisor).mean,
        "flags": list(row.flags),
    }


def tables_json(groups: dict[GroupKey, list[Row]], tables: dict[GroupKey, TableStats], divisor: Divisor | None) -> dict:
    """The statistics of every table, per row."""
    return {
        "statistics": {
            "method": METHOD.format(replicates=REPLICATES, alpha=ALPHA),
            "alpha": ALPHA,
            "replicates": REPLICATES,
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
                "one_example_points": 100 / tables[group].test_examples if tables[group].test_examples else None,
                "detectable_difference_points": tables[group].detectable,
                "comparisons": tables[group].comparisons,
                "tied_with_best": [r.method for r in tables[group].tied],
                "rows": [_row(r, divisor) for r in rows],
            }
            for group, rows in groups.items()
        ],
    }


def write_exports(directory: Path, formats: tuple[str, ...], flat: list[dict], statistics: dict) -> list[Path]:
    """``report.csv``: the flat per-run table; ``report.json``: the statistics plus ``runs`` (that table)."""
    written = []
    if "csv" in formats:
        path = directory / "report.csv"
        columns = list(dict.fromkeys(k for r in flat for k in r))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)
        write_atomic(path, text.getvalue())
        written.append(path)
    if "json" in formats:
        path = directory / "report.json"
        write_atomic(path, json.dumps(statistics | {"runs": flat}, indent=1, default=str) + "\n")
        written.append(path)
    return written
