"""``prunekit report DIR``: Markdown, HTML and PNG figures from run directories."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "formats",
    type=click.Choice(["csv", "json"]),
    multiple=True,
    help="Also write the flat per-run table as report.csv or report.json (repeatable).",
)
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
def report(directory: Path, formats: tuple[str, ...], no_figures: bool) -> None:
    """Write DIR/report.md, DIR/report.html and DIR/figures/*.png from the runs in DIR.

    DIR is a matrix directory (prunekit matrix --out), a folder of run directories,
    or one run directory. Incomplete or malformed runs are listed, not fatal.
    """
    from prunekit.report.build import build_report

    result = build_report(directory, tuple(dict.fromkeys(formats)), with_figures=not no_figures)
    click.echo(f"Report of {result.runs} runs: {result.markdown}, {result.html}")
    for line in result.best:
        click.echo(f"  {line}")
    for path in result.figures:
        click.echo(f"  figure {path}")
    for path in result.tables:
        click.echo(f"  table  {path}")
    for problem in result.problems:
        click.echo(f"  left out {problem.name}: {problem.reason}")
