"""Progress of a matrix: runs done/failed/remaining and each running run's epoch.

A rich display on a terminal; plain lines otherwise (logs, CI).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


@dataclass
class Active:
    """A run being executed: its epoch so far and latest test accuracy."""

    run_id: str
    epochs: int
    epoch: int = 0
    accuracy: float | None = None


class MatrixProgress:
    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.total = total
        self.done = done
        self.failed = 0
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bar: Progress | None = None
        self.overall: TaskID | None = None
        self.tasks: dict[str, TaskID] = {}
        self.epochs_seen: dict[str, int] = {}

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    def _counts(self) -> str:
        return f"{self.done} done, {self.failed} failed, {self.remaining} remaining"

    def __enter__(self) -> MatrixProgress:
        if not self.quiet and self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            from rich.table import Column

            # status first and the run id last, so a narrow terminal truncates the id, not the numbers
            self.bar = Progress(
                TextColumn("{task.fields[status]}", table_column=Column(width=34, no_wrap=True)),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
                console=Console(file=self.stream),
                expand=True,
            )
            self.bar.start()
            self.overall = self.bar.add_task("matrix", total=self.total, completed=self.done, status=self._counts())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def print(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def _position(self) -> str:
        width = len(str(self.total))
        return f"[{self.done + self.failed:>{width}}/{self.total}]"

    def started(self, run: Active) -> None:
        self.epochs_seen[run.run_id] = 0
        if self.bar is not None:
            self.tasks[run.run_id] = self.bar.add_task(run.run_id, total=run.epochs, status="  starting")
        else:
            self.print(f"{self._position()} start {run.run_id}")

    def update(self, run: Active) -> None:
        if self.bar is not None and run.run_id in self.tasks:
            acc = f"  epoch {run.epoch}/{run.epochs}" + (f", test acc {run.accuracy:.2f}%" if run.accuracy is not None else "")
            self.bar.update(self.tasks[run.run_id], completed=run.epoch, status=acc)
        elif self.bar is None and run.epoch > self.epochs_seen.get(run.run_id, 0):
            acc = f", test acc {run.accuracy:.2f}%" if run.accuracy is not None else ""
            self.print(f"{self._position()}   {run.run_id}: epoch {run.epoch}/{run.epochs}{acc}")
        self.epochs_seen[run.run_id] = run.epoch

    def finished(self, run: Active, ok: bool, detail: str) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        if self.bar is not None:
            task = self.tasks.pop(run.run_id, None)
            if task is not None:
                self.bar.remove_task(task)
            if self.overall is not None:  # set with the bar
                self.bar.update(self.overall, completed=self.done + self.failed, status=self._counts())
        word = "done  " if ok else "FAILED"
        self.print(f"{self._position()} {word} {run.run_id}: {detail}")
