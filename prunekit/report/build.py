"""Assemble ``report.md``, ``report.html``, ``figures/*.png`` and the flat table."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prunekit import __version__
from prunekit.core.rundir.files import remove_stale_temps, write_atomic
from prunekit.errors import UsageError
from prunekit.report import figures as figs
from prunekit.report import payoff
from prunekit.report.compare import METHOD, TableStats, analyse
from prunekit.report.document import Bullets, Document, Heading, Image, Paragraph, Table
from prunekit.report.export import tables_json, write_exports
from prunekit.report.findings import findings
from prunekit.report.load import Loaded, Problem, load
from prunekit.report.memory import Divisor, MemoryFigure, MiB, memory_figures, per_100mib_divisor, primary_figure
from prunekit.report.stats import ALPHA, DRAWS
from prunekit.report.table import GroupKey, Row, build_rows, flat_rows

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


def _tie(row: Row) -> str:
    if row.stats is None:
        return "—"
    if row.stats.tied_with_best is None:
        return "no verdict (one seed)"
    if row.stats.to_best is None:
        return "best"
    return f"{'yes' if row.stats.tied_with_best else 'no'} (adjusted p = {row.stats.p_adjusted:.2g})"


def _accuracy(row: Row) -> str:
    if row.stats is None:
        return row.final().format()
    return row.stats.accuracy.format() + (" test set only" if row.stats.test_set_only else "")


def _vs_best(row: Row) -> str:
    if row.stats is None or row.stats.tied_with_best is None:
        return "—"
    return row.stats.to_best.format(signed=True) if row.stats.to_best else "0"


def _row_cells(row: Row, figures: list[MemoryFigure], divisor: Divisor | None, with_settings: bool) -> list[str]:
    pruner_b, optimizer_b = row.ledger()
    done, total = len(row.completed), len(row.runs)
    cells = [str(row.rank) if row.rank else "—", row.optimizer, row.pruner]
    if with_settings:
        cells.append(row.settings)
    cells += [
        str(done) if done == total else f"{done} of {total}",
        _accuracy(row),
        _vs_best(row),
        _tie(row),
        row.final().format(),
        row.best().format(),
        f"{100 * row.group.target:g}%",
        _pct(row.achieved().mean),
        "—" if pruner_b.mean is None else f"{pruner_b.mean:.2f}",
        "—" if optimizer_b.mean is None else f"{optimizer_b.mean:.2f}",
    ]
    for fig in figures:
        peak, mean = row.memory(fig)
        cells.append("—" if peak.mean is None or mean.mean is None else f"{peak.mean / MiB:,.1f} / {mean.mean / MiB:,.1f}")
    cells.append(row.accuracy_per_100mib(divisor).format(2))
    cells += payoff.flops_cells(row)
    wall = row.wall()
    cells.append("—" if wall.mean is None else f"{wall.mean:,.1f}")
    cells.append("; ".join(row.flags))
    return cells


def _table(rows: list[Row], figures: list[MemoryFigure], divisor: Divisor | None) -> Table:
    with_settings = any(r.settings for r in rows)
    headers = ["rank", "optimizer", "pruner"] + (["settings"] if with_settings else [])
    headers += [
        "seeds",
        "final acc % [95% CI]",
        "vs best, points [95% simultaneous CI]",
        "tied with best",
        "final acc % ± std",
        "best-epoch acc %",
        "target",
        "achieved",
        "pruner state B/weight",
        "optimizer state B/weight",
    ]
    headers += [f"{f.label} peak / mean MiB" for f in figures]
    headers += ["acc per 100 MiB", *payoff.HEADERS, "wall s", "flags"]
    numeric_from = 4 if with_settings else 3
    right = {0} | set(range(numeric_from, len(headers) - 1))
    return Table(headers, [_row_cells(r, figures, divisor, with_settings) for r in rows], right)


def _resolution(table: TableStats) -> str:
    if table.best is None and not table.one_seed:
        return "No row of this table was compared (flagged, or no per-example test results)."
    n = table.test_examples
    assert n is not None  # rows were compared, so analyse recorded the test set's size
    text = f"Compared on the same {n:,} test examples: one example is {100 / n:.2f} points."
    if table.one_seed:
        text += (
            f" {len(table.one_seed)} row(s) with one seed: one seed cannot separate a method from its luck, so they get "
            "a test-set-only interval and no verdict."
        )
    if table.best is None:
        return text
    if table.detectable is not None:
        text += (
            f" Differences to the best smaller than about {table.detectable:.2f} points are unlikely to be detected "
            f"(80% power; family-wise alpha = {ALPHA:g} over every pair of the {table.comparisons + 1} rows with a verdict)."
        )
    return text + " Tied with the best: " + ", ".join(r.method for r in table.tied) + "."


def _best(groups: dict[GroupKey, list[Row]], tables: dict[GroupKey, TableStats], divisor: Divisor | None) -> list[str]:
    items = []
    for group, rows in groups.items():
        table = tables[group]
        if table.best is None:
            why = "every compared row has one seed, which cannot separate a method from its luck"
            if not table.one_seed:
                why = "all failed, missed the target, or lack per-example results"
            items.append(f"{group.title}: no verdict ({why}).")
            continue
        tied = ", ".join(f"{r.method} ({r.compared_stats.accuracy.format(1)}%)" for r in table.tied)
        line = f"{group.title}: tied with the best: {tied}"
        if divisor is not None:
            ranked = [(mean, r) for r in rows if r.rank and (mean := r.accuracy_per_100mib(divisor).mean) is not None]
            if ranked:
                e = max(ranked, key=lambda pair: pair[0])[1]
                line += (
                    f"; highest accuracy per 100 MiB of {divisor.label}: {e.method}, {e.accuracy_per_100mib(divisor).format()}"
                )
        items.append(line + ".")
    return items


def _explanations(divisor: Divisor | None) -> list[str]:
    per = (
        f"final test accuracy divided by (peak {divisor.label} in MiB / 100), per run, then averaged"
        if divisor
        else "not computed: no allocator or device figure and no ledger total in every completed run"
    )
    return [
        f"statistics: {METHOD.format(draws=DRAWS, alpha=ALPHA)}.",
        "final acc % [95% CI]: mean final test accuracy over seeds, with an interval that covers both seed-to-seed "
        "variation (t tails: k seeds give k - 1 degrees of freedom) and the finite test set. With one seed the interval "
        "is marked 'test set only': it covers the luck of the test set, not of the seed, and the row gets no verdict.",
        "vs best: the row's difference from the best (observed, so the selection makes it look worse than it is) with a "
        "95% interval for its true difference from the best of the other rows; the intervals hold together and account "
        "for which row was picked as the best. tied with best: 'no' only when some row is shown to beat it; all the "
        "'no' verdicts of a table are right together at least 95% of the time (the adjusted p-value is family-wise).",
        "rank: 1 for the best and every row tied with it; the rows left are ranked the same way among themselves "
        "(shared ranks: 1, 1, 3). Flagged rows (a run failed, missed its target sparsity, or has no per-example "
        "results) are not ranked.",
        "final acc % ± std: mean ± sample standard deviation over seeds; best-epoch acc %: at each run's best epoch "
        "(chosen on the test set, so optimistic).",
        "target / achieved: fraction of prunable weights (conv and linear weights) that are exactly zero; a run misses its target when achieved is more than 0.5 percentage point off.",
        "pruner state / optimizer state B/weight: exact bytes per prunable weight from the run's ledger (pruner state tensors; optimizer state held for prunable weights). "
        "Mask pruners keep bool masks (1 B per weight) unless marked [bits masks] (packed, 0.125 B) or [implicit masks] (0 B: pruned = exactly zero).",
        "memory: measured by each sampler (its scope in parentheses), MiB, peak / mean over the run's samples, averaged over seeds.",
        f"acc per 100 MiB: {per}; never process RSS, which on a CPU is mostly the torch runtime.",
        payoff.EXPLANATION,
        "wall s: wall-clock seconds of the whole run, including data loading and evaluation.",
    ]


@dataclass
class _Analysis:
    groups: dict[GroupKey, list[Row]]
    tables: dict[GroupKey, TableStats]
    figures: list[MemoryFigure]
    measured: MemoryFigure | None  # the most specific figure every run measured
    divisor: Divisor | None  # what accuracy per 100 MiB divides by


def analyse_runs(loaded: Loaded) -> _Analysis:
    groups = build_rows(loaded.runs)
    tables = analyse(groups)
    figures = memory_figures(loaded.runs)
    return _Analysis(groups, tables, figures, primary_figure(loaded.runs, figures), per_100mib_divisor(loaded.runs, figures))


def build_document(loaded: Loaded, a: _Analysis, images: list[tuple[str, str]]) -> Document:
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
    doc.add(Heading(1, "Findings"))
    doc.add(Bullets(findings(a.groups, a.tables, a.measured)))
    doc.add(Heading(1, "How to read the tables"))
    doc.add(Bullets(_explanations(a.divisor)))
    for group, rows in a.groups.items():
        doc.add(Heading(1, group.title))
        doc.add(Paragraph(_resolution(a.tables[group])))
        doc.add(_table(rows, a.figures, a.divisor))
    doc.add(Heading(1, "Tied with the best (flagged rows excluded)"))
    doc.add(Bullets(_best(a.groups, a.tables, a.divisor) or ["no runs"]))
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


def build_report(directory: Path, formats: tuple[str, ...] = (), with_figures: bool = True) -> Report:
    """Write the report files into ``directory``; UsageError if it holds no runs at all."""
    directory = Path(directory)
    try:
        is_dir = directory.is_dir()
    except OSError as exc:  # a name too long, a loop of links, ...
        raise UsageError(f"Cannot use {directory}: {exc.strerror or exc}.") from None
    if not is_dir:
        raise UsageError(f"{directory} is not a directory; give a matrix directory (prunekit matrix --out) or a folder of runs.")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"Cannot write the report into {directory}: it is not a writable directory.")
    try:
        return _build_report(directory, formats, with_figures)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise UsageError(f"Cannot make the report:{where}: {exc.strerror or exc}.") from None


def _build_report(directory: Path, formats: tuple[str, ...], with_figures: bool) -> Report:
    loaded = load(directory)
    if not loaded.runs and not loaded.problems:
        raise UsageError(f"{directory} holds no run directories (no summary.json, failure.json or config.yaml found).")
    a = analyse_runs(loaded)
    groups, measured = a.groups, a.measured

    images: list[tuple[str, str]] = []
    written: list[Path] = []
    folder = directory / FIGURES
    remove_stale_temps(folder, ".png")  # a report killed mid-figure left them
    if with_figures and loaded.runs:
        plan: list[tuple[str, Callable[[Path], Path | None], str]] = [
            ("accuracy vs sparsity", lambda p: figs.accuracy_vs_sparsity(groups, p), "accuracy_vs_sparsity.png"),
            ("accuracy per epoch", lambda p: figs.accuracy_per_epoch(groups, p), "accuracy_per_epoch.png"),
            ("memory timeline per run", lambda p: figs.memory_timeline(groups, measured, p), "memory_timeline.png"),
            ("memory vs accuracy", lambda p: figs.memory_vs_accuracy(groups, measured, p), "memory_vs_accuracy.png"),
            ("memory ledger per method", lambda p: figs.ledger_bars(groups, p), "ledger.png"),
            ("accuracy vs FLOPs", lambda p: payoff.accuracy_vs_flops(groups, p), "accuracy_vs_flops.png"),
        ]
        for alt, draw, filename in plan:
            path = draw(folder / filename)
            if path is not None:
                written.append(path)
                images.append((alt, f"{FIGURES}/{filename}"))

    doc = build_document(loaded, a, images)
    md, html = directory / "report.md", directory / "report.html"
    write_atomic(md, doc.markdown())
    write_atomic(html, doc.html())
    statistics = tables_json(groups, a.tables, a.divisor)
    tables = write_exports(directory, formats, flat_rows(loaded.runs, a.figures, a.divisor), statistics)
    return Report(md, html, written, tables, loaded.problems, len(loaded.runs), _best(groups, a.tables, a.divisor))
