"""The ``prunekit`` command line."""

from __future__ import annotations

import json
import signal
import sys

import click

from prunekit import __version__
from prunekit.bench_inference_command import bench_inference
from prunekit.core.plugins.kinds import KINDS
from prunekit.core.tracking.redact import Redactor
from prunekit.errors import UsageError
from prunekit.export.command import export
from prunekit.matrix.cli import matrix
from prunekit.report.cli import report
from prunekit.run_command import run


def one_line(message: str) -> str:
    """``message`` with line breaks and other control characters escaped."""
    return "".join(ch if ch.isprintable() or ch == "\t" else ascii(ch)[1:-1] for ch in message.strip())


def fail(message: str) -> None:
    """One line on stderr, exit status 2 (credentials masked: :mod:`prunekit.core.tracking.redact`; a newline
    in what the user gave is shown as ``\\n``)."""
    click.echo(f"Error: {one_line(Redactor().text(message))}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prunekit")
def cli() -> None:
    """Benchmark neural-network pruning during training."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """Every plugin, its version, what it registered, and any load error."""
    from prunekit.core.plugins.loading import get_plugins

    infos = [info.describe() for info in get_plugins().infos.values()]
    if as_json:
        click.echo(json.dumps(infos, indent=2))
        return
    for info in infos:
        registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info["registered"].items()) or "nothing"
        click.echo(f"{info['name']} ({info['distribution']} {info['version']}): {registered}")
        for error in info["errors"]:
            click.echo(f"  error: {error}")


@cli.command(name="list")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(kind: str, as_json: bool) -> None:
    """Registered models, datasets, optimizers, pruners, samplers or trackers."""
    from prunekit.core.plugins.loading import get_registry

    entries = [e for _, e in sorted(get_registry().entries[kind].items())]
    if as_json:
        click.echo(json.dumps([e.describe() for e in entries], indent=2, default=str))
        return
    width = max((len(e.name) for e in entries), default=0)
    for e in entries:
        click.echo(f"{e.name:<{width}}  {e.description}  [{e.distribution}]")
        for o in e.options:
            choices = f" ({'|'.join(map(str, o.choices))})" if o.choices else ""
            click.echo(f"{'':<{width}}    {o.name}={o.default!r}{choices}: {o.help}")
    if kind == "trackers":
        from prunekit.core.tracking.protocol import COMMON_OPTIONS

        for o in COMMON_OPTIONS:
            click.echo(f"every tracker also takes {o.name}={o.default!r}: {o.help}")


cli.add_command(run)
cli.add_command(matrix)
cli.add_command(report)
cli.add_command(export)
cli.add_command(bench_inference)


def _stop_listening() -> None:
    """After the first Ctrl-C, ignore more: a second one would break the exit handlers with a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors become one line on stderr and exit status 2."""
    try:
        cli.main(args=argv, prog_name="prunekit", standalone_mode=False)
    except UsageError as exc:
        fail(str(exc))
    except click.exceptions.Abort:
        _stop_listening()
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        fail(exc.format_message().replace("\n", " "))
    except KeyboardInterrupt:
        _stop_listening()
        click.echo("Interrupted; the run directory has no summary.json and is incomplete.", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
