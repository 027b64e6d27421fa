"""Results tables: one row per method (optimizer, pruner, settings) and target sparsity.

Accuracy and the other figures are the mean (and sample standard deviation) over
the seeds that completed. A row is flagged when any of its runs failed or missed its
target sparsity; flagged rows are kept in the table but ranked nowhere. Ranks, intervals
and ties come from :mod:`prunekit.report.compare`.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prunekit.report.load import RunRecord
from prunekit.report.memory import Divisor, MemoryFigure, ledger_per_weight, per_100mib

if TYPE_CHECKING:
    from prunekit.report.compare import RowStats

#: Config fields that never distinguish methods (seed is averaged over; the rest are the group).
_NOT_METHOD = {"seed", "out", "quiet", "sparsity", "model", "dataset", "optimizer", "pruner", "pruner_opts"}


@dataclass(frozen=True, order=True)
class GroupKey:
    model: str
    dataset: str
    target: float

    @property
    def title(self) -> str:
        what = "dense (no pruning)" if self.target == 0 else f"{100 * self.target:g}% target sparsity"
        return f"{self.model} on {self.dataset}, {what}"


@dataclass
class Stat:
    mean: float | None
    std: float | None
    n: int

    def format(self, digits: int = 2, scale: float = 1.0) -> str:
        if self.mean is None:
            return "—"
        text = f"{self.mean * scale:.{digits}f}"
        if self.std is not None:
            text += f" ± {self.std * scale:.{digits}f}"
        return text


def stat(values: Iterable[float | None]) -> Stat:
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return Stat(None, None, 0)
    return Stat(statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else None, len(xs))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def varying_fields(runs: list[RunRecord]) -> list[str]:
    """Config fields that tell apart runs of one model, dataset, optimizer and pruner.

    Seeds are averaged over and target sparsity is the table; a field that differs only
    between optimizers (a per-optimizer learning rate, say) is not shown.
    """
    buckets: dict[str, list[RunRecord]] = {}
    for r in runs:
        key = _canonical(
            [r.get("model"), r.get("dataset"), r.config.get("optimizer"), r.config.get("pruner"), r.config.get("pruner_opts")]
        )
        buckets.setdefault(key, []).append(r)
    keys = sorted({k for r in runs for k in r.config} - _NOT_METHOD)
    return [k for k in keys if any(len({_canonical(r.config.get(k)) for r in b}) > 1 for b in buckets.values())]


def mask_storage(run: RunRecord) -> str | None:
    """How the run's pruner stored its masks (``bool``, ``bits``, ``implicit``), if it has masks."""
    resolved = (run.summary or {}).get("pruner_options") or {}
    return resolved.get("mask_storage") or (run.config.get("pruner_opts") or {}).get("mask_storage")


def state_storage(run: RunRecord) -> str | None:
    """How the run's optimizer stored per-weight state (``dense``, ``compact``, ``compact-indexed``), if it says."""
    resolved = (run.summary or {}).get("optimizer_options") or {}
    return resolved.get("state_storage") or (run.config.get("optimizer_opts") or {}).get("state_storage")


def _optimizer_label(run: RunRecord) -> str:
    optimizer = str(run.config.get("optimizer") or run.get("optimizer"))
    storage = state_storage(run)
    return f"{optimizer} [{storage} state]" if storage not in (None, "dense") else optimizer


def _pruner_label(run: RunRecord, varying_opts: dict[str, set[str]]) -> str:
    pruner = str(run.config.get("pruner") or run.get("pruner"))
    opts = run.config.get("pruner_opts") or {}
    hidden = ("mask_storage", "structure")  # shown in brackets whenever set
    shown = [f"{k}={opts[k]}" for k in sorted(opts) if k in varying_opts.get(pruner, set()) and k not in hidden]
    label = f"{pruner}({', '.join(shown)})" if shown else pruner
    structure = (run.summary or {}).get("structure") or {}
    if structure.get("pattern"):  # N:M: the pattern and how many layers could not take it
        dense = len(structure.get("dense_layers") or [])
        label += f" [{structure['pattern']}, {dense} layer{'s' if dense != 1 else ''} dense]"
    storage = mask_storage(run)
    return f"{label} [{storage} masks]" if storage not in (None, "bool") else label


def _varying_pruner_options(runs: list[RunRecord]) -> dict[str, set[str]]:
    by_pruner: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_pruner.setdefault(str(r.config.get("pruner") or r.get("pruner")), []).append(r.config.get("pruner_opts") or {})
    out: dict[str, set[str]] = {}
    for pruner, option_sets in by_pruner.items():
        keys = {k for opts in option_sets for k in opts}
        out[pruner] = {k for k in keys if len({_canonical(o.get(k)) for o in option_sets}) > 1}
    return out


@dataclass
class Row:
    """One method at one target sparsity, over its seeds."""

    group: GroupKey
    optimizer: str
    pruner: str
    settings: str
    runs: list[RunRecord]
    flags: list[str] = field(default_factory=list)
    rank: int | None = None
    #: Interval, difference to the table's best and tie, from prunekit.report.compare.
    stats: RowStats | None = None

    @property
    def completed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.completed]

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if not r.completed]

    @property
    def method(self) -> str:
        return f"{self.optimizer} + {self.pruner}" + (f" [{self.settings}]" if self.settings else "")

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    @property
    def compared_stats(self) -> RowStats:
        """The interval and verdict of a compared row (prunekit.report.compare gave it one)."""
        if self.stats is None:
            raise TypeError(f"{self.method} was not compared")
        return self.stats

    def final(self) -> Stat:
        return stat(r.completed_summary["final_test_accuracy"] for r in self.completed)

    def best(self) -> Stat:
        return stat(r.completed_summary["best_test_accuracy"] for r in self.completed)

    def achieved(self) -> Stat:
        return stat(r.completed_summary["achieved_sparsity"] for r in self.completed)

    def ledger(self) -> tuple[Stat, Stat]:
        pairs = [ledger_per_weight(r.completed_summary) for r in self.completed]
        return stat(p for p, _ in pairs), stat(o for _, o in pairs)

    def memory(self, fig: MemoryFigure) -> tuple[Stat, Stat]:
        values = [fig.values(r) for r in self.completed]
        return stat(v[0] for v in values if v), stat(v[1] for v in values if v)

    def accuracy_per_100mib(self, fig: Divisor | None) -> Stat:
        if fig is None:
            return Stat(None, None, 0)
        return stat(per_100mib(r, fig) for r in self.completed)

    def wall(self) -> Stat:
        return stat(r.completed_summary["wall_time_s"] for r in self.completed)


def _flags(runs: list[RunRecord]) -> list[str]:
    flags = []
    failed = [r for r in runs if not r.completed]
    if failed:
        reason = str((failed[0].failure or {}).get("reason", "see failure.json"))
        flags.append(f"failed {len(failed)}/{len(runs)}: {reason}")
    missed = [r for r in runs if r.completed and not r.completed_summary["target_reached"]]
    if missed:
        achieved = ", ".join(f"{100 * r.completed_summary['achieved_sparsity']:.1f}%" for r in missed)
        flags.append(f"missed target {len(missed)}/{len(runs)} (achieved {achieved})")
    return flags


def build_rows(runs: list[RunRecord]) -> dict[GroupKey, list[Row]]:
    """Rows per group, flagged ones flagged; unranked until prunekit.report.compare.analyse."""
    varying = varying_fields(runs)
    varying_opts = _varying_pruner_options(runs)
    buckets: dict[tuple[GroupKey, str, str, str], list[RunRecord]] = {}
    for run in runs:
        group = GroupKey(str(run.get("model")), str(run.get("dataset")), round(run.target, 6))
        settings = ", ".join(f"{k}={'default' if run.config.get(k) is None else run.config.get(k)}" for k in varying)
        key = (group, _optimizer_label(run), _pruner_label(run, varying_opts), settings)
        buckets.setdefault(key, []).append(run)
    groups: dict[GroupKey, list[Row]] = {}
    for (group, optimizer, pruner, settings), members in sorted(buckets.items(), key=lambda kv: kv[0]):
        members.sort(key=lambda r: (int(r.config.get("seed") or 0), r.name))
        groups.setdefault(group, []).append(Row(group, optimizer, pruner, settings, members, _flags(members)))
    return dict(sorted(groups.items()))


def flat_rows(runs: list[RunRecord], figures: list[MemoryFigure], primary: Divisor | None) -> list[dict[str, Any]]:
    """One row per run, for pandas: every figure the report uses, unaggregated."""
    out = []
    for run in sorted(runs, key=lambda r: r.name):
        s = run.summary or {}
        pruner_bpw, optimizer_bpw = ledger_per_weight(s) if run.completed else (None, None)
        ledger = s.get("ledger") or {}
        row: dict[str, Any] = {
            "run": run.name,
            "status": run.status,
            "model": run.get("model"),
            "dataset": run.get("dataset"),
            "optimizer": run.config.get("optimizer") or run.get("optimizer"),
            "pruner": run.config.get("pruner") or run.get("pruner"),
            "pruner_options": json.dumps(s.get("pruner_options", run.config.get("pruner_opts") or {}), sort_keys=True),
            "mask_storage": mask_storage(run),
            "seed": run.get("seed"),
            "epochs": run.get("epochs"),
            "target_sparsity": run.target,
            "achieved_sparsity": s.get("achieved_sparsity"),
            "target_reached": s.get("target_reached"),
            "final_test_accuracy": s.get("final_test_accuracy"),
            "best_test_accuracy": s.get("best_test_accuracy"),
            "best_epoch": s.get("best_epoch"),
            "pruner_state_bytes_per_prunable_weight": pruner_bpw,
            "optimizer_state_bytes_per_prunable_weight": optimizer_bpw,
            "ledger_parameters_bytes": ledger.get("parameters"),
            "ledger_gradients_bytes": ledger.get("gradients"),
            "ledger_optimizer_state_bytes": ledger.get("optimizer_state"),
            "ledger_pruner_state_bytes": ledger.get("pruner_state"),
        }
        for fig in figures:
            values = fig.values(run) if run.completed else None
            row[f"{fig.key}.peak"] = values[0] if values else None
            row[f"{fig.key}.mean"] = values[1] if values else None
        row["accuracy_per_100mib"] = per_100mib(run, primary) if primary else None
        row["accuracy_per_100mib_divides_by"] = primary.column if primary else None
        row["test_examples"] = run.outcomes.n if run.outcomes else None
        row["test_set_fingerprint"] = run.outcomes.fingerprint if run.outcomes else None
        row["wall_time_s"] = s.get("wall_time_s")
        row["failure_reason"] = (run.failure or {}).get("reason")
        out.append(row)
    return out
