"""PNG figures of a report, drawn with matplotlib's Agg canvas (imported lazily, no pyplot).

Colour encodes the optimizer, marker and line style the pruner, everywhere.
Hollow markers are runs or rows flagged for failing or missing their target.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from prunekit.core.rundir.files import atomic_path
from prunekit.report.load import RunRecord
from prunekit.report.memory import MemoryFigure, MiB
from prunekit.report.table import GroupKey, Row

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.typing import LineStyleType

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES: tuple[LineStyleType, ...] = ("-", "--", "-.", ":")
DPI = 110


def _listed_colors(name: str) -> tuple[tuple[float, float, float], ...]:
    """The colours of a listed colormap such as tab10 (matplotlib types ``colormaps[name]`` as any Colormap)."""
    from matplotlib import colormaps

    return cast("tuple[tuple[float, float, float], ...]", cast("ListedColormap", colormaps[name]).colors)


class Style:
    """Consistent colours per optimizer and markers per pruner."""

    def __init__(self, optimizers: list[str], pruners: list[str], dense: set[str] | frozenset[str] = frozenset()) -> None:
        palette = _listed_colors("tab10") + _listed_colors("Dark2")
        self.colors = {name: palette[i % len(palette)] for i, name in enumerate(sorted(set(optimizers)))}
        ordered = sorted(set(pruners), key=lambda p: (p not in dense, p))  # dense pruners first
        self.markers = {name: MARKERS[i % len(MARKERS)] for i, name in enumerate(ordered)}
        self.lines = {name: LINESTYLES[i % len(LINESTYLES)] for i, name in enumerate(ordered)}

    def legend(self, fig: Figure) -> None:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=c, lw=2.5, label=n) for n, c in self.colors.items()]
        handles += [Line2D([], [], color="0.3", marker=self.markers[p], linestyle=self.lines[p], label=p) for p in self.markers]
        fig.legend(handles=handles, loc="outside right center", fontsize="small", title="optimizer / pruner", frameon=False)


def _grid(n: int, width: float = 5.2, height: float = 3.8, cols: int = 3) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols + 2.2, height * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _save(fig: Figure, path: Path) -> Path:
    """Render to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return path


def _style_for(rows: list[Row]) -> Style:
    return Style([r.optimizer for r in rows], [r.pruner for r in rows], {r.pruner for r in rows if r.group.target == 0})


def _final_mean(row: Row) -> float:
    """The row's mean final accuracy; only rows with a completed run are drawn."""
    mean = row.final().mean
    if mean is None:
        raise ValueError(f"{row.method}: no completed run to draw")
    return mean


def accuracy_vs_sparsity(groups: dict[GroupKey, list[Row]], path: Path) -> Path | None:
    """Final accuracy (mean ± std over seeds) against target sparsity, per model and dataset.

    Each optimizer's dense run (a pruner declared ``dense``, such as ``none``) is the 0% point of its pruners' lines.
    """
    rows = [r for rs in groups.values() for r in rs if r.final().mean is not None]
    if not rows:
        return None
    style = _style_for(rows)
    datasets = sorted({(g.model, g.dataset) for g in groups})
    fig, axes = _grid(len(datasets))
    for ax, (model, dataset) in zip(axes, datasets):
        mine = [r for r in rows if (r.group.model, r.group.dataset) == (model, dataset)]
        dense = {(r.optimizer, r.settings): r for r in mine if r.group.target == 0}
        lines: dict[tuple[str, str, str], list[Row]] = {}
        for r in mine:
            if r.group.target > 0:
                lines.setdefault((r.optimizer, r.pruner, r.settings), []).append(r)
        for (optimizer, pruner, settings), members in sorted(lines.items()):
            members = sorted(members, key=lambda r: r.group.target)
            base = dense.get((optimizer, settings))
            points = ([base] if base is not None else []) + members
            xs = [100 * p.group.target for p in points]
            ys = [_final_mean(p) for p in points]
            errs = [p.final().std or 0.0 for p in points]
            color = style.colors[optimizer]
            ax.errorbar(
                xs,
                ys,
                yerr=errs,
                color=color,
                marker=style.markers[pruner],
                linestyle=style.lines[pruner],
                capsize=2,
                markersize=5,
                linewidth=1.3,
                alpha=0.9,
            )
            flagged = [(x, y) for x, y, p in zip(xs, ys, points) if p.flagged]
            if flagged:
                flagged_x, flagged_y = zip(*flagged)
                ax.scatter(flagged_x, flagged_y, s=90, facecolors="none", edgecolors="red", linewidths=1.2, zorder=5)
        for (optimizer, _), r in dense.items():  # the dense point, in its pruner's marker, on top of the lines
            ax.scatter([0], [_final_mean(r)], color=style.colors[optimizer], marker=style.markers[r.pruner], s=42, zorder=4)
        ax.set_title(f"{model} on {dataset}")
        ax.set_xlabel("target sparsity (%)")
        ax.set_ylabel("final test accuracy (%)")
        ax.grid(alpha=0.3)
    style.legend(fig)
    fig.suptitle("Accuracy vs sparsity (mean ± std over seeds; red ring: flagged)")
    return _save(fig, path)


def accuracy_per_epoch(groups: dict[GroupKey, list[Row]], path: Path) -> Path | None:
    """Test accuracy per epoch, mean over seeds, one panel per model and target sparsity."""
    panels = [(g, [r for r in rs if any(run.metrics for run in r.runs)]) for g, rs in groups.items()]
    panels = [(g, rs) for g, rs in panels if rs]
    if not panels:
        return None
    style = _style_for([r for _, rs in panels for r in rs])
    fig, axes = _grid(len(panels))
    for ax, (group, rows) in zip(axes, panels):
        for r in rows:
            per_epoch: dict[int, list[float]] = {}
            for run in r.runs:
                for m in run.metrics:
                    if isinstance(m.get("epoch"), int) and isinstance(m.get("test_accuracy"), (int, float)):
                        per_epoch.setdefault(m["epoch"], []).append(float(m["test_accuracy"]))
            if not per_epoch:
                continue
            epochs = sorted(per_epoch)
            ax.plot(
                epochs,
                [sum(per_epoch[e]) / len(per_epoch[e]) for e in epochs],
                color=style.colors[r.optimizer],
                linestyle=style.lines[r.pruner],
                marker=style.markers[r.pruner],
                markersize=3,
                linewidth=1.2,
                alpha=0.5 if r.flagged else 0.9,
            )
        ax.set_title(group.title, fontsize="medium")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    style.legend(fig)
    fig.suptitle("Test accuracy per epoch (mean over seeds; faded: flagged)")
    return _save(fig, path)


def _timeline_series(run: RunRecord, fig: MemoryFigure) -> tuple[list[float], list[float]]:
    ts, ys = [], []
    for rec in run.timeline:
        if rec.get("sampler") != fig.sampler:
            continue
        value = (rec.get("figures") or {}).get(fig.figure)
        if isinstance(value, (int, float)) and isinstance(rec.get("t"), (int, float)):
            ts.append(float(rec["t"]))
            ys.append(float(value) / MiB)
    return ts, ys


def memory_timeline(groups: dict[GroupKey, list[Row]], fig_key: MemoryFigure | None, path: Path) -> Path | None:
    """The chosen memory figure over time: one line per run, one panel per model and target."""
    if fig_key is None:
        return None
    panels = []
    for group, rows in groups.items():
        series = [(r, run) for r in rows for run in r.completed if _timeline_series(run, fig_key)[0]]
        if series:
            panels.append((group, series))
    if not panels:
        return None
    style = _style_for([r for _, s in panels for r, _ in s])
    fig, axes = _grid(len(panels))
    for ax, (group, series) in zip(axes, panels):
        for row, run in series:
            ts, ys = _timeline_series(run, fig_key)
            ax.plot(ts, ys, color=style.colors[row.optimizer], linestyle=style.lines[row.pruner], linewidth=1.0, alpha=0.85)
        ax.set_title(group.title, fontsize="medium")
        ax.set_xlabel("time since run start (s)")
        ax.set_ylabel(f"{fig_key.label} (MiB)")
        ax.grid(alpha=0.3)
    style.legend(fig)
    fig.suptitle(f"Memory timeline per run: {fig_key.label}")
    return _save(fig, path)


def memory_vs_accuracy(groups: dict[GroupKey, list[Row]], fig_key: MemoryFigure | None, path: Path) -> Path | None:
    """Each completed run: peak of the chosen memory figure against final accuracy."""
    if fig_key is None:
        return None
    rows = [r for rs in groups.values() for r in rs if r.completed]
    if not rows:
        return None
    style = _style_for(rows)
    datasets = sorted({(r.group.model, r.group.dataset) for r in rows})
    fig, axes = _grid(len(datasets))
    for ax, (model, dataset) in zip(axes, datasets):
        for r in rows:
            if (r.group.model, r.group.dataset) != (model, dataset):
                continue
            for run in r.completed:
                values = fig_key.values(run)
                if values is None:
                    continue
                hollow = r.flagged or not run.completed_summary["target_reached"]
                color = style.colors[r.optimizer]
                ax.scatter(
                    [values[0] / MiB],
                    [run.completed_summary["final_test_accuracy"]],
                    marker=style.markers[r.pruner],
                    s=36,
                    facecolors="none" if hollow else color,
                    edgecolors=color,
                    linewidths=1.2,
                )
        ax.set_title(f"{model} on {dataset}")
        ax.set_xlabel(f"peak {fig_key.label} (MiB)")
        ax.set_ylabel("final test accuracy (%)")
        ax.grid(alpha=0.3)
    style.legend(fig)
    fig.suptitle("Memory vs accuracy per run (hollow: flagged)")
    return _save(fig, path)


LEDGER_PARTS = (
    ("parameters", "parameters"),
    ("gradients", "gradients"),
    ("optimizer_state", "optimizer state"),
    ("pruner_state", "pruner state"),
)


def ledger_bars(groups: dict[GroupKey, list[Row]], path: Path) -> Path | None:
    """Stacked exact ledger bytes per method (optimizer + pruner), one panel per model."""
    methods: dict[tuple[str, str], dict[str, dict[str, list[float]]]] = {}
    for group, rows in groups.items():
        for r in rows:
            for run in r.completed:
                ledger = run.completed_summary.get("ledger") or {}
                entry = methods.setdefault((group.model, group.dataset), {}).setdefault(f"{r.optimizer} + {r.pruner}", {})
                for key, _ in LEDGER_PARTS:
                    if isinstance(ledger.get(key), (int, float)):
                        entry.setdefault(key, []).append(float(ledger[key]))
    methods = {k: v for k, v in methods.items() if v}
    if not methods:
        return None
    colors = _listed_colors("Set2")
    panels = sorted(methods)
    tallest = max(len(methods[p]) for p in panels)
    fig, axes = _grid(len(panels), width=7.5, height=max(2.5, 0.32 * tallest + 1.2), cols=2)
    for ax, panel in zip(axes, panels):
        entries = methods[panel]
        names = sorted(entries, key=lambda n: sum(_mean(entries[n].get(k)) for k, _ in LEDGER_PARTS))
        totals = [sum(_mean(entries[n].get(k)) for k, _ in LEDGER_PARTS) for n in names]
        scale, unit = (MiB, "MiB") if max(totals, default=0) >= 10 * MiB else (1024, "KiB")
        left = [0.0] * len(names)
        for i, (key, label) in enumerate(LEDGER_PARTS):
            widths = [_mean(entries[n].get(key)) / scale for n in names]
            ax.barh(names, widths, left=left, color=colors[i], label=label, edgecolor="white", linewidth=0.5)
            left = [a + b for a, b in zip(left, widths)]
        for y, total in enumerate(left):
            ax.text(total, y, f" {total:,.0f}", va="center", fontsize="x-small")
        ax.set_title(f"{panel[0]} on {panel[1]}")
        ax.set_xlabel(f"exact ledger ({unit})")
        ax.tick_params(axis="y", labelsize="small")
        ax.margins(x=0.12)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(LEDGER_PARTS), fontsize="small", frameon=False)
    fig.suptitle("Training memory ledger per method: parameters, gradients, optimizer state, pruner state")
    return _save(fig, path)


def _mean(values: Any) -> float:
    return sum(values) / len(values) if values else 0.0
