"""What a row's sparsity buys in compute: FLOPs columns and the accuracy-vs-FLOPs figure.

Figures come from each run's ``summary.json`` ``flops`` section
(:mod:`prunekit.core.measure.flops`: per example, 2 FLOPs per multiply-add); runs from
before it have none and show "—". Values that are not finite numbers are ignored.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prunekit.export.command import read_exports
from prunekit.export.formats import FORMATS
from prunekit.report.figures import _grid, _save, _style_for
from prunekit.report.load import RunRecord
from prunekit.report.table import GroupKey, Row, Stat, stat

HEADERS = [
    "inference MFLOPs (nonzero)",
    "theoretical speed-up",
    "compression",
    "training TFLOPs",
    "export KiB dense / sparse / nm",
]
EXPLANATION = (
    "FLOPs: counted by torch.utils.flop_counter (2 per multiply-add, matmuls and convolutions), per example; "
    "inference = the final model's nonzero forward FLOPs, theoretical speed-up = dense / nonzero forward FLOPs, "
    "compression = all parameters / nonzero parameters, training = the whole run's forward and backward FLOPs "
    "at the density each step had (RigL's dense-gradient steps counted dense), mean over seeds. "
    "export KiB: size on disk of the safetensors files `prunekit export` wrote (recorded in each run's exports.json), mean over seeds."
)


def flops_value(run: RunRecord, key: str) -> float | None:
    """``summary["flops"][key]`` when it is a finite number."""
    section = (run.summary or {}).get("flops")
    value = section.get(key) if isinstance(section, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _stat(row: Row, key: str) -> Stat:
    return stat(flops_value(r, key) for r in row.completed)


def _format(value: Stat, scale: float, digits: int, suffix: str = "") -> str:
    return "—" if value.mean is None else f"{value.mean * scale:,.{digits}f}{suffix}"


def flops_cells(row: Row) -> list[str]:
    """The row's cells under :data:`HEADERS`."""
    return [
        _format(_stat(row, "forward_nonzero"), 1e-6, 3),
        _format(_stat(row, "theoretical_speedup"), 1.0, 2, "x"),
        _format(_stat(row, "compression_ratio"), 1.0, 2, "x"),
        _format(_stat(row, "training_total"), 1e-12, 3),
        " / ".join(_format(stat(read_exports(r.path).get(f) for r in row.completed), 1 / 1024, 1) for f in FORMATS),
    ]


def accuracy_vs_flops(groups: dict[GroupKey, list[Row]], path: Path) -> Path | None:
    """Each completed run's final accuracy against its training FLOPs and its inference (nonzero) FLOPs."""
    rows = [r for rs in groups.values() for r in rs if any(flops_value(run, "training_total") for run in r.completed)]
    if not rows:
        return None
    style = _style_for(rows)
    datasets = sorted({(r.group.model, r.group.dataset) for r in rows})
    fig, axes = _grid(2 * len(datasets), cols=2)
    panels = [("training_total", "training FLOPs (whole run)"), ("forward_nonzero", "inference FLOPs per example (nonzero)")]
    for i, (model, dataset) in enumerate(datasets):
        for ax, (key, label) in zip(axes[2 * i : 2 * i + 2], panels):
            for r in rows:
                if (r.group.model, r.group.dataset) != (model, dataset):
                    continue
                points: list[tuple[float, Any]] = [
                    (x, run.summary["final_test_accuracy"])
                    for run in r.completed
                    if run.summary is not None and (x := flops_value(run, key)) is not None
                ]
                color = style.colors[r.optimizer]
                hollow = r.flagged
                ax.scatter(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    marker=style.markers[r.pruner],
                    s=36,
                    facecolors="none" if hollow else color,
                    edgecolors=color,
                    linewidths=1.2,
                )
            ax.set_xscale("log")
            ax.set_title(f"{model} on {dataset}")
            ax.set_xlabel(label)
            ax.set_ylabel("final test accuracy (%)")
            ax.grid(alpha=0.3)
    style.legend(fig)
    fig.suptitle("Accuracy vs FLOPs per run (hollow: flagged)")
    return _save(fig, path)
