"""Progress display for ``prunekit run``: a rich bar on a terminal, epoch lines otherwise."""

from __future__ import annotations

import sys


class RunProgress:
    """Shows steps, loss, accuracy and sparsity while a run trains."""

    def __init__(self, epochs: int, quiet: bool = False, stream=None) -> None:
        self.epochs = epochs
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.bar = None
        self.task = None
        self.last = ""

    def __enter__(self) -> RunProgress:
        if not self.quiet and self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(file=self.stream),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=None, status="")
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def step(self, step: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, total=total, status=self.last)

    def epoch(self, record: dict) -> None:
        self.last = (
            f"epoch {record['epoch']}/{self.epochs} loss {record['train_loss']:.4f} "
            f"test acc {record['test_accuracy']:.2f}% sparsity {100 * record['sparsity']:.1f}%"
        )
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.console.print(self.last)
        else:
            print(self.last, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(f"[yellow]Warning:[/] {message}")
        else:
            print(f"Warning: {message}", file=self.stream, flush=True)
