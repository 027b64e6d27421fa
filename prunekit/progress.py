"""What ``prunekit run`` shows: progress while it trains (a rich bar on a terminal, epoch
lines otherwise) and :func:`print_summary` when it is done."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from prunekit.core.rundir.layout import Summary

MiB = 1024 * 1024


class RunProgress:
    """Shows steps, loss, accuracy and sparsity while a run trains."""

    def __init__(self, epochs: int, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.epochs = epochs
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.bar: Progress | None = None
        self.task: TaskID | None = None
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

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def step(self, step: int, total: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=step, total=total, status=self.last)

    def epoch(self, record: dict[str, Any]) -> None:
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


def _mib(value: float) -> str:
    return f"{value / MiB:,.1f} MiB"


def print_summary(out: Path, s: Summary) -> None:
    """The finished run in a few lines: accuracy, target and achieved sparsity, ledger, memory, time."""
    ledger = s["ledger"]
    reached = "reached" if s["target_reached"] else "NOT reached"
    click.echo(f"Run complete: {out}")
    click.echo(
        f"  model          {s['model']} on {s['dataset']}, {s['optimizer']} + {s['pruner']}, {s['epochs']} epochs, seed {s['seed']}"
    )
    click.echo(
        f"  test accuracy  {s['final_test_accuracy']:.2f}% final, {s['best_test_accuracy']:.2f}% best (epoch {s['best_epoch']})"
    )
    click.echo(
        f"  sparsity       {100 * s['achieved_sparsity']:.2f}% of prunable weights (target {100 * s['target_sparsity']:.2f}%, {reached}); "
        f"{100 * s['achieved_sparsity_all_parameters']:.2f}% of all parameters"
    )
    click.echo(
        f"  ledger         parameters {ledger['parameters']:,} B, gradients {ledger['gradients']:,} B, "
        f"optimizer state {ledger['optimizer_state']:,} B, pruner state {ledger['pruner_state']:,} B "
        f"({ledger['pruner_state_bytes_per_prunable_weight']:.2f} B per prunable weight)"
    )
    for name, info in s["samplers"].items():
        peaks = ", ".join(
            f"{key} peak {_mib(fig['peak'])} mean {_mib(fig['mean'])}"
            for key, fig in info["figures"].items()
            if key.endswith("_bytes")
        )
        exact = info.get("peak_rss_bytes") or info.get("peak_allocated_bytes")
        exact_text = f"; exact peak {_mib(exact)}" if exact else ""
        click.echo(
            f"  memory         {name} ({info['scope']}): sampled {peaks or 'no byte figures'}{exact_text}; "
            f"{info['samples']} samples, {info['errors']} errors"
        )
    click.echo(
        f"  time           {s['wall_time_s']:.1f} s wall, {1000 * s['mean_step_time_s']:.2f} ms per training step, "
        f"{100 * s.get('data_wait_fraction', 0.0):.1f}% of training waiting for data"
    )
    for name, t in s.get("trackers", {}).items():
        problems = f"{t['errors']} errors, {t['dropped']} dropped" + (f" (first: {t['first_error']})" if t["first_error"] else "")
        click.echo(f"  tracker        {name}: {t['delivered']} events delivered, {problems}")
    for warning in s["warnings"]:
        click.echo(f"  warning        {warning}")
