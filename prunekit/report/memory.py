"""Memory figures in a report: what the samplers measured, and the exact ledger.

Accuracy per 100 MiB divides by the most specific figure every completed run has:
the allocator's peak on a GPU (exact tensor bytes), else the GPU driver's device
figure, else the exact ledger total. Never process RSS: on a CPU it is mostly the
torch runtime and tells methods apart by noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prunekit.report.load import RunRecord

MiB = 1024 * 1024
_SCOPE_ORDER = {"allocator": 0, "device": 1, "process": 2}
_FIGURE_ORDER = ("max_allocated", "allocated", "used", "rss")
#: Scopes specific enough to divide accuracy by.
DIVISOR_SCOPES = ("allocator", "device")
LEDGER_PARTS = ("parameters", "buffers", "gradients", "optimizer_state", "optimizer_scalars", "pruner_state")


@dataclass(frozen=True)
class MemoryFigure:
    """One measured figure: a sampler's ``*_bytes`` value."""

    sampler: str
    figure: str
    scope: str

    @property
    def label(self) -> str:
        return f"{self.sampler} {self.figure.removesuffix('_bytes')} ({self.scope})"

    @property
    def key(self) -> str:
        return f"{self.sampler}.{self.figure}"

    @property
    def column(self) -> str:
        """The flat table's column accuracy per 100 MiB divides by."""
        return f"{self.key}.peak"

    def values(self, run: RunRecord) -> tuple[float, float] | None:
        """(peak, mean) bytes, or None if this run did not measure it."""
        try:
            fig = run.completed_summary["samplers"][self.sampler]["figures"][self.figure]
            return float(fig["peak"]), float(fig["mean"])
        except (KeyError, TypeError, ValueError):
            return None


def ledger_total(summary: dict[str, Any]) -> float | None:
    """The exact ledger's total bytes (its parts summed when ``total`` is absent)."""
    ledger = summary.get("ledger") or {}
    if isinstance(ledger.get("total"), (int, float)):
        return float(ledger["total"])
    parts = [ledger[k] for k in LEDGER_PARTS if isinstance(ledger.get(k), (int, float))]
    return float(sum(parts)) if parts else None


@dataclass(frozen=True)
class LedgerTotal:
    """The exact ledger total, used like a MemoryFigure (peak = mean = total)."""

    label: str = "exact ledger total (tensor bytes counted, not measured)"
    key: str = "ledger.total"
    column: str = "ledger.total"
    scope: str = "ledger"

    def values(self, run: RunRecord) -> tuple[float, float] | None:
        total = ledger_total(run.summary) if run.summary else None
        return None if total is None else (total, total)


Divisor = MemoryFigure | LedgerTotal


def ledger_per_weight(summary: dict[str, Any]) -> tuple[float | None, float | None]:
    """(pruner state, optimizer state) bytes per prunable weight, from the exact ledger."""
    ledger = summary.get("ledger") or {}
    prunable = ledger.get("prunable_weights") or (summary.get("parameter_counts") or {}).get("prunable")
    pruner = ledger.get("pruner_state_bytes_per_prunable_weight")
    if pruner is None and prunable and "pruner_state" in ledger:
        pruner = ledger["pruner_state"] / prunable
    per = ledger.get("per_prunable_weight")
    optimizer = None
    if isinstance(per, dict) and prunable:
        optimizer = sum(float(v.get("optimizer_state", 0)) for v in per.values() if isinstance(v, dict)) / prunable
    return pruner, optimizer


def kept_per_weight(summary: dict[str, Any]) -> dict[str, float] | None:
    """Bytes kept per prunable weight, by kind (parameter, gradient, optimizer_state, pruner_state)."""
    ledger = summary.get("ledger") or {}
    prunable = ledger.get("prunable_weights")
    per = ledger.get("per_prunable_weight")
    if not isinstance(per, dict) or not prunable:
        return None
    kinds = ("parameter", "gradient", "optimizer_state", "pruner_state")
    return {k: sum(float(v.get(k, 0)) for v in per.values() if isinstance(v, dict)) / prunable for k in kinds}


def memory_figures(runs: list[RunRecord]) -> list[MemoryFigure]:
    """Every ``*_bytes`` figure any completed run measured, the most specific first."""
    found: dict[tuple[str, str], str] = {}
    for run in runs:
        if not run.completed:
            continue
        for sampler, info in run.completed_summary["samplers"].items():
            if not isinstance(info, dict):
                continue
            for figure in info.get("figures") or {}:
                if figure.endswith("_bytes"):
                    found.setdefault((sampler, figure), str(info.get("scope", "?")))

    def order(item: MemoryFigure) -> tuple[int, int, str, str]:
        pos = next((i for i, word in enumerate(_FIGURE_ORDER) if word in item.figure), len(_FIGURE_ORDER))
        return _SCOPE_ORDER.get(item.scope, 9), pos, item.sampler, item.figure

    return sorted((MemoryFigure(s, f, scope) for (s, f), scope in found.items()), key=order)


def primary_figure(runs: list[RunRecord], figures: list[MemoryFigure]) -> MemoryFigure | None:
    """The most specific measured figure every completed run has (timelines and scatter plots use it)."""
    completed = [r for r in runs if r.completed]
    for fig in figures:
        if completed and all(fig.values(r) is not None for r in completed):
            return fig
    return None


def per_100mib_divisor(runs: list[RunRecord], figures: list[MemoryFigure]) -> Divisor | None:
    """What accuracy per 100 MiB divides by: allocator, else device, else the ledger total; never RSS."""
    completed = [r for r in runs if r.completed]
    if not completed:
        return None
    for fig in figures:
        if fig.scope in DIVISOR_SCOPES and all(fig.values(r) is not None for r in completed):
            return fig
    ledger = LedgerTotal()
    return ledger if all(ledger.values(r) is not None for r in completed) else None


def per_100mib(run: RunRecord, fig: Divisor) -> float | None:
    """Final accuracy divided by (peak bytes of ``fig`` / 100 MiB)."""
    values = fig.values(run) if run.completed else None
    if values is None or values[0] <= 0:
        return None
    accuracy: float = run.completed_summary["final_test_accuracy"]
    return accuracy / (values[0] / (100 * MiB))
