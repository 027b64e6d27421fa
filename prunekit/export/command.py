"""``prunekit export RUN_DIR --format dense|sparse|nm --out FILE.safetensors``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from prunekit.export.formats import FORMATS

#: Bytes on disk of the latest export of each format, kept in the run directory for the report.
EXPORTS = "exports.json"


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="dense",
    show_default=True,
    help="dense state_dict, sparse (bitmask + values) or nm (packed N:M values + indices)",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="the .safetensors file to write")
def export(run_dir: Path, fmt: str, out: Path) -> None:
    """Write a completed run's final model to safetensors (loader: prunekit.export.load_model)."""
    from prunekit.core.rundir.files import write_json
    from prunekit.errors import UsageError
    from prunekit.export.load import write_export
    from prunekit.export.source import final_model

    if out.suffix != ".safetensors":
        raise UsageError(f"--out {out}: name a .safetensors file.")
    final = final_model(run_dir)
    size = write_export(final, fmt, out)
    sizes = read_exports(run_dir)
    sizes[fmt] = size
    write_json(run_dir / EXPORTS, sizes)
    click.echo(f"Exported {run_dir} as {fmt}: {out} ({size:,} bytes on disk; recorded in {run_dir / EXPORTS})")


def read_exports(run_dir: Path) -> dict[str, int]:
    """The recorded sizes (bytes by format); what is malformed or not a size is left out."""
    try:
        data = json.loads((run_dir / EXPORTS).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in FORMATS and isinstance(v, int) and not isinstance(v, bool) and v >= 0}
