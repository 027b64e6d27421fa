"""``prunekit matrix``: run a YAML grid of runs, resumably, in child processes."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from prunekit.core.config.options import parse_pairs
from prunekit.errors import UsageError

if TYPE_CHECKING:
    from prunekit.matrix.expand import Plan, PlannedRun
    from prunekit.matrix.spec import MatrixSpec


def _overrides(pairs: tuple[str, ...]) -> dict[str, Any]:
    from prunekit.core.config.yamlfile import TooLarge
    from prunekit.matrix.spec import load_yaml

    out = {}
    for key, value in parse_pairs(pairs, "--set").items():
        try:
            out[key] = load_yaml(value) if value != "" else None
        except yaml.YAMLError:
            out[key] = value
        except TooLarge as exc:
            raise UsageError(f"--set {key}: {exc}.") from None
    return out


def _load(spec_path: Path | None, example: str | None, overrides: dict[str, Any]) -> MatrixSpec:
    from prunekit.matrix import examples
    from prunekit.matrix.spec import load_spec

    if spec_path is not None and example is not None:
        raise UsageError("Give either a SPEC file or --example NAME, not both.")
    if example is not None:
        return examples.load(example, overrides)
    if spec_path is None:
        raise UsageError(f"Give a SPEC file or --example NAME (examples: {', '.join(examples.names())}).")
    return load_spec(spec_path, overrides)


def _header(spec: MatrixSpec, plan: Plan, out: Path, runs: list[PlannedRun], counts: dict[str, int]) -> str:
    from prunekit.matrix import store

    resumed = sum(store.resumable(out, r.id) for r in runs)
    return (
        f"Matrix '{spec.name}' (spec {spec.spec_hash}): {len(plan.runs)} runs in {out}: "
        f"{counts['finished']} finished, {counts['failed']} failed before, {counts['interrupted']} interrupted, "
        + (f"{counts['malformed']} with a malformed summary.json, " if counts.get("malformed") else "")
        + f"{counts['new']} new"
        + (f", {counts['queued']} queued or running in Slurm" if counts.get("queued") else "")
        + f"; {len(runs)} to run now."
        + (f" {resumed} of them continue from a checkpoint." if resumed else "")
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system, a container stop) reached the matrix: stop as Ctrl-C does."""


def _stop_on_sigterm() -> None:
    """From now on SIGTERM stops the matrix as Ctrl-C does: its children checkpoint (exit status 3)."""

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the children's checkpointing short
        raise Terminated("terminated by SIGTERM")

    signal.signal(signal.SIGTERM, handler)


def _again(spec_path: Path | None, example: str | None) -> str:
    return str(spec_path) if spec_path is not None else f"--example {example}"


def _echo_skipped(plan: Plan) -> None:
    for s in plan.skipped:
        runs = f" ({s.runs} run{'s' if s.runs != 1 else ''})" if s.runs else ""
        click.echo(f"  skipped {s.what}{runs}: {s.reason}")


@click.command()
@click.argument("spec_path", metavar="[SPEC]", required=False, type=click.Path(path_type=Path))
@click.option(
    "--example",
    metavar="NAME",
    help="Use a spec shipped with prunekit (digits-quick, lenet5-mnist, resnet18-cifar10, resnet50-imagenet).",
)
@click.option("--print", "print_spec", is_flag=True, help="Print the spec's YAML and exit.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Matrix directory [default: runs/<spec name>]. Rerun with the same --out to resume.",
)
@click.option(
    "--jobs",
    "-j",
    type=int,
    default=1,
    show_default=True,
    help="Runs at once: CPU processes with threads split fairly, or one per visible GPU.",
)
@click.option("--threads", type=int, default=None, help="Torch threads per run [default: CPU cores // jobs].")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a setting for every run (YAML value, e.g. data_dir=/data); replaces that field's axis.",
)
@click.option(
    "--keep-failed",
    is_flag=True,
    help="Do not redo runs that failed before (default: failed and interrupted runs are redone, from their checkpoint where they have one).",
)
@click.option("--dry-run", is_flag=True, help="Check the spec and list the runs and their states; write nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final summary.")
@click.option(
    "--executor",
    type=click.Choice(["local", "slurm"]),
    default="local",
    show_default=True,
    help="local: child processes here; slurm: one Slurm job per run (a job array), through submitit.",
)
@click.option("--slurm-partition", default=None, help="Slurm partition [default: the cluster's default].")
@click.option("--slurm-time", type=int, default=None, help="Time limit per run's job, in minutes [default: the partition's].")
@click.option(
    "--gpus-per-run", type=int, default=0, show_default=True, help="GPUs per run's job (more than 1: the run uses DDP)."
)
@click.option("--cpus-per-run", type=int, default=None, help="CPU cores per run's job [default: the cluster's, usually 1].")
@click.option("--mem-per-run", default=None, help="Memory per run's job, e.g. 16G [default: the cluster's].")
@click.option("--slurm-opt", multiple=True, metavar="KEY=VALUE", help="Any other sbatch option, e.g. account=abc (repeatable).")
@click.option("--detach", is_flag=True, help="With --executor slurm: return after submitting; then --status.")
@click.option("--status", "show_status", is_flag=True, help="Show every run's state (pending, running, done, failed) and exit.")
def matrix(
    spec_path: Path | None,
    example: str | None,
    print_spec: bool,
    out: Path | None,
    jobs: int,
    threads: int | None,
    settings: tuple[str, ...],
    keep_failed: bool,
    dry_run: bool,
    quiet: bool,
    executor: str,
    slurm_partition: str | None,
    slurm_time: int | None,
    gpus_per_run: int,
    cpus_per_run: int | None,
    mem_per_run: str | None,
    slurm_opt: tuple[str, ...],
    detach: bool,
    show_status: bool,
) -> None:
    """Run every combination of a YAML SPEC's axes, each run in its own child process.

    Finished runs (those with summary.json) are skipped when the same command is run
    again; interrupted and failed ones are redone, continuing from their checkpoint
    where they have one. Then: prunekit report DIR.
    """
    if print_spec:
        if example is not None and spec_path is None:
            from prunekit.matrix import examples

            click.echo(examples.text(example), nl=False)
            return
        if spec_path is None or example is not None:
            raise UsageError("--print needs either --example NAME or a SPEC file.")
        from prunekit.core.config.yamlfile import read_text

        click.echo(read_text(spec_path, "Matrix spec"), nl=False)
        return
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}.")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}.")
    if detach and executor != "slurm":
        raise UsageError("--detach needs --executor slurm (local runs stop with the matrix process).")
    from prunekit.matrix import slurm

    cluster = slurm.SlurmSettings(
        slurm_partition, slurm_time, gpus_per_run, cpus_per_run, mem_per_run, parse_pairs(slurm_opt, "--slurm-opt"), threads
    )
    if executor == "slurm" and not (dry_run or show_status):
        cluster = slurm.check(cluster)

    from prunekit.core.plugins.loading import get_plugins
    from prunekit.matrix import store
    from prunekit.matrix.expand import expand
    from prunekit.matrix.progress import MatrixProgress
    from prunekit.matrix.scheduler import Scheduler, todo
    from prunekit.matrix.slots import make_slots

    spec = _load(spec_path, example, _overrides(settings))
    plan = expand(spec, get_plugins().registry)
    out = out or Path("runs") / re.sub(r"[^A-Za-z0-9._-]+", "_", spec.name)
    store.check_out(out, plan)
    from prunekit.matrix import jobs as scheduled

    if show_status:
        scheduled.print_status(out, plan, click.echo)
        return
    if dry_run:
        runs, counts = todo(out, plan, keep_failed, set(scheduled.live_runs(out, plan)))
        click.echo(_header(spec, plan, out, runs, counts))
        _echo_skipped(plan)
        for run in plan.runs:
            click.echo(f"  {store.run_state(out, run.id):<11} {run.id}")
        return

    slots = make_slots(jobs, [r.config for r in plan.runs], threads)
    out.mkdir(parents=True, exist_ok=True)
    with store.MatrixLock(out):
        store.check_out(out, plan)  # again, now that no other matrix process can change it
        store.prepare(out, plan)
        live = scheduled.live_runs(out, plan)
        runs, counts = todo(out, plan, keep_failed, set(live))
        if not quiet:
            click.echo(_header(spec, plan, out, runs, counts))
            _echo_skipped(plan)
            where = "one Slurm job per run" if executor == "slurm" else slots.description
            click.echo(f"  {where}; logs in {out / store.LOGS}")
        progress = MatrixProgress(len(plan.runs), done=counts["finished"], quiet=quiet)
        if keep_failed:
            progress.failed = counts["failed"]
        try:
            _stop_on_sigterm()
            if executor == "slurm":
                outcome = scheduled.submit_and_wait(out, plan, runs, live, cluster, progress, detach, click.echo)
                if outcome is None:
                    click.echo(f"Detached. Follow with: prunekit matrix {_again(spec_path, example)} --out {out} --status")
                    return
            else:
                with progress:
                    outcome = Scheduler(out, plan, slots, progress).execute(runs)
        except KeyboardInterrupt as exc:
            from prunekit.core.train.preemption import EXIT_INTERRUPTED

            by = "Stopped by SIGTERM" if isinstance(exc, Terminated) else "Interrupted"
            if executor == "slurm":
                click.echo(f"{by}: stopped waiting; submitted Slurm jobs go on. Follow them with --status.", err=True)
            else:
                click.echo(
                    f"{by}: finished runs are kept, running ones checkpointed; run the same command again to resume.", err=True
                )
            sys.exit(EXIT_INTERRUPTED if isinstance(exc, Terminated) else 130)

    failed = {r.id for r in plan.runs if store.run_state(out, r.id) == store.FAILED} | outcome.unrecorded
    finished = sum(store.run_state(out, r.id) == store.FINISHED for r in plan.runs)
    incompatible = sum(s.runs for s in plan.skipped)
    missing = [s.what for s in plan.skipped if not s.runs]
    click.echo(
        f"Matrix '{spec.name}': {finished} of {len(plan.runs)} runs finished ({len(outcome.finished)} this time), "
        f"{len(failed)} failed, {incompatible} skipped as incompatible"
        + (f", not installed: {', '.join(missing)}" if missing else "")
        + f". Results in {out}; next: prunekit report {out}"
    )
    for run_id in sorted(failed):
        reason = outcome.failed.get(run_id, "failed before (see its failure.json)")
        click.echo(f"  failed {run_id}: {reason}")
    if failed:
        sys.exit(1)
