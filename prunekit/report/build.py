"""Assemble ``report.md``, ``report.html``, ``figures/*.png`` and the flat table."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from prunekit import __version__
from prunekit.core.files import write_atomic
from prunekit.errors import UsageError
from prunekit.report import figures as figs
from prunekit.report.document import Bullets, Document, Heading, Image, Paragraph, Table
from prunekit.report.load import Loaded, Problem, load
from prunekit.report.table import GroupKey, MemoryFigure, MiB, Row, build_rows, flat_rows, memory_figures, primary_figure

FIGURES = "figures"


@dataclass
class Report:
    """What was written, and what was left out."""

    markdown: Path
    html: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    runs: int = 0
    best: list[str] = field(default_factory=list)


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def _row_cells(row: Row, figures: list[MemoryFigure], primary: MemoryFigure | None, with_settings: bool) -> list[str]:
    pruner_b, optimizer_b = row.ledger()
    done, total = len(row.completed), len(row.runs)
    cells = [str(row.rank) if row.rank else "—", row.optimizer, row.pruner]
    if with_settings:
        cells.append(row.settings)
    cells += [
        str(done) if done == total else f"{done} of {total}",
        row.final().format(),
        row.best().format(),
        f"{100 * row.group.target:g}%",
        _pct(row.achieved().mean),
        "—" if pruner_b.mean is None else f"{pruner_b.mean:.2f}",
        "—" if optimizer_b.mean is None else f"{optimizer_b.mean:.2f}",
    ]
    for fig in figures:
        peak, mean = row.memory(fig)
        cells.append("—" if peak.mean is None else f"{peak.mean / MiB:,.1f} / {mean.mean / MiB:,.1f}")
    cells.append(row.accuracy_per_100mib(primary).format(2))
    wall = row.wall()
    cells.append("—" if wall.mean is None else f"{wall.mean:,.1f}")
    cells.append("; ".join(row.flags))
    return cells


def _table(rows: list[Row], figures: list[MemoryFigure], primary: MemoryFigure | None) -> Table:
    with_settings = any(r.settings for r in rows)
    headers = ["rank", "optimizer", "pruner"] + (["settings"] if with_settings else [])
    headers += ["seeds", "final acc %", "best acc %", "target", "achieved", "pruner state B/weight", "optimizer state B/weight"]
    headers += [f"{f.label} peak / mean MiB" for f in figures]
    headers += ["acc per 100 MiB", "wall s", "flags"]
    numeric_from = 4 if with_settings else 3
    right = {0} | set(range(numeric_from, len(headers) - 1))
    return Table(headers, [_row_cells(r, figures, primary, with_settings) for r in rows], right)


def _best(groups: dict[GroupKey, list[Row]], primary: MemoryFigure | None) -> list[str]:
    items = []
    for group, rows in groups.items():
        ranked = [r for r in rows if r.rank]
        if not ranked:
            items.append(f"{group.title}: no run qualifies (all failed or missed the target).")
            continue
        top = [r for r in ranked if r.rank == 1]
        tied = " (tied)" if len(top) > 1 else ""
        line = f"{group.title}: best accuracy {', '.join(r.method for r in top)}{tied}, {top[0].final().format()}% final"
        if primary is not None:
            efficient = [r for r in ranked if r.accuracy_per_100mib(primary).mean is not None]
            if efficient:
                e = max(efficient, key=lambda r: r.accuracy_per_100mib(primary).mean)
                line += f"; best accuracy per 100 MiB {e.method}, {e.accuracy_per_100mib(primary).format()}"
        items.append(line + ".")
    return items


def _explanations(primary: MemoryFigure | None) -> list[str]:
    per = (
        f"final test accuracy divided by (peak {primary.label} in MiB / 100), per run, then averaged"
        if primary
        else "not computed: no memory figure was measured by every completed run"
    )
    return [
        "rank: by mean final accuracy within the table (equal accuracy, equal rank); flagged rows (a run failed or missed its target sparsity) are not ranked.",
        "final / best acc %: test accuracy after the last epoch / at the best epoch; mean ± sample standard deviation over the seeds that completed.",
        "target / achieved: fraction of prunable weights (conv and linear weights) that are exactly zero; a run misses its target when achieved is more than 0.5 percentage point off.",
        "pruner state / optimizer state B/weight: exact bytes per prunable weight from the run's ledger (pruner state tensors; optimizer state held for prunable weights).",
        "memory: measured by each sampler (its scope in parentheses), MiB, peak / mean over the run's samples, averaged over seeds.",
        f"acc per 100 MiB: {per}.",
        "wall s: wall-clock seconds of the whole run, including data loading and evaluation.",
    ]


def build_document(
    loaded: Loaded,
    groups: dict[GroupKey, list[Row]],
    figures: list[MemoryFigure],
    primary: MemoryFigure | None,
    images: list[tuple[str, str]],
) -> Document:
    name = (loaded.matrix or {}).get("name") or loaded.root.resolve().name
    completed = sum(r.completed for r in loaded.runs)
    failed = len(loaded.runs) - completed
    doc = Document(f"prunekit report: {name}")
    doc.add(
        Paragraph(
            f"{len(loaded.runs)} runs under {loaded.root}: {completed} completed, {failed} failed"
            + (f"; {len(loaded.problems)} left out (see Problems)" if loaded.problems else "")
            + f". Written by prunekit {__version__} on {time.strftime('%Y-%m-%d %H:%M')}."
        )
    )
    doc.add(Bullets(_explanations(primary)))
    for group, rows in groups.items():
        doc.add(Heading(1, group.title))
        doc.add(_table(rows, figures, primary))
    doc.add(Heading(1, "Best (flagged rows excluded)"))
    doc.add(Bullets(_best(groups, primary) or ["no runs"]))
    if images:
        doc.add(Heading(1, "Figures"))
        for alt, path in images:
            doc.add(Image(alt, path))
    skipped = (loaded.matrix or {}).get("skipped") or []
    if skipped:
        doc.add(Heading(1, "Skipped by the matrix"))
        doc.add(
            Bullets(
                [
                    f"{s.get('what')}: {s.get('reason')}" + (f" ({s.get('runs')} runs)" if s.get("runs") else "")
                    for s in skipped
                    if isinstance(s, dict)
                ]
            )
        )
    if loaded.problems or loaded.notes:
        doc.add(Heading(1, "Problems"))
        doc.add(Bullets([f"{p.name}: {p.reason}" for p in loaded.problems] + loaded.notes))
    return doc


def _write_flat(directory: Path, formats: tuple[str, ...], rows: list[dict]) -> list[Path]:
    written = []
    if "csv" in formats:
        path = directory / "report.csv"
        columns = list(dict.fromkeys(k for r in rows for k in r))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(path, text.getvalue())
        written.append(path)
    if "json" in formats:
        path = directory / "report.json"
        write_atomic(path, json.dumps(rows, indent=1, default=str) + "\n")
        written.append(path)
    return written


def build_report(directory: Path, formats: tuple[str, ...] = (), with_figures: bool = True) -> Report:
    """Write the report files into ``directory``; UsageError if it holds no runs at all."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory; give a matrix directory (prunekit matrix --out) or a folder of runs.")
    loaded = load(directory)
    if not loaded.runs and not loaded.problems:
        raise UsageError(f"{directory} holds no run directories (no summary.json, failure.json or config.yaml found).")
    groups = build_rows(loaded.runs)
    mem = memory_figures(loaded.runs)
    primary = primary_figure(loaded.runs, mem)

    images: list[tuple[str, str]] = []
    written: list[Path] = []
    if with_figures and loaded.runs:
        folder = directory / FIGURES
        plan = [
            ("accuracy vs sparsity", lambda p: figs.accuracy_vs_sparsity(groups, p), "accuracy_vs_sparsity.png"),
            ("accuracy per epoch", lambda p: figs.accuracy_per_epoch(groups, p), "accuracy_per_epoch.png"),
            ("memory timeline per run", lambda p: figs.memory_timeline(groups, primary, p), "memory_timeline.png"),
            ("memory vs accuracy", lambda p: figs.memory_vs_accuracy(groups, primary, p), "memory_vs_accuracy.png"),
            ("memory ledger per method", lambda p: figs.ledger_bars(groups, p), "ledger.png"),
        ]
        for alt, draw, filename in plan:
            path = draw(folder / filename)
            if path is not None:
                written.append(path)
                images.append((alt, f"{FIGURES}/{filename}"))

    doc = build_document(loaded, groups, mem, primary, images)
    md, html = directory / "report.md", directory / "report.html"
    write_atomic(md, doc.markdown())
    write_atomic(html, doc.html())
    tables = _write_flat(directory, formats, flat_rows(loaded.runs, mem, primary))
    return Report(md, html, written, tables, loaded.problems, len(loaded.runs), _best(groups, primary))
