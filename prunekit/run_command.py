"""``prunekit run``: its options, how they combine with ``--config``, and what it prints and exits with."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from prunekit.core.config.options import parse_pairs
from prunekit.core.config.settings import RunConfig, config_from_mapping, load_yaml_config
from prunekit.core.sparsity.schedule import SCHEDULES
from prunekit.core.tracking.redact import Redactor
from prunekit.core.train.preemption import EXIT_INTERRUPTED
from prunekit.errors import UsageError

# Options of `prunekit run`, mapped to RunConfig fields.
_RUN_FIELDS = {
    "model": "model",
    "model_opt": "model_opts",
    "dataset": "dataset",
    "data_dir": "data_dir",
    "download": "download",
    "dataset_opt": "dataset_opts",
    "optimizer": "optimizer",
    "optimizer_opt": "optimizer_opts",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "pruner": "pruner",
    "pruner_opt": "pruner_opts",
    "sparsity": "sparsity",
    "schedule": "schedule",
    "warmup": "warmup",
    "prune_end": "prune_end",
    "frequency": "frequency",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "sampler": "samplers",
    "sample_interval": "sample_interval",
    "device": "device",
    "seed": "seed",
    "amp": "amp",
    "compile_": "compile",
    "channels_last": "channels_last",
    "workers": "workers",
    "checkpoint_every": "checkpoint_every",
    "out": "out",
    "quiet": "quiet",
    "tracker": "trackers",
    "tracker_opt": "tracker_opts",
}
#: The one owner of every default: the options below show RunConfig's (tests/test_run_defaults.py ties them).
_DEFAULTS = RunConfig()
_PAIR_OPTIONS = {
    "model_opt": "--model-opt",
    "dataset_opt": "--dataset-opt",
    "optimizer_opt": "--optimizer-opt",
    "pruner_opt": "--pruner-opt",
}


@click.command()
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="YAML file of settings; options given here override it."
)
@click.option("--model", default=_DEFAULTS.model, show_default=True, help="Model name (prunekit list models).")
@click.option("--model-opt", multiple=True, metavar="KEY=VALUE", help="Model option (repeatable; prunekit list models).")
@click.option("--dataset", default=_DEFAULTS.dataset, show_default=True, help="Dataset name (prunekit list datasets).")
@click.option("--data-dir", default=None, help="Directory holding the dataset (mnist, cifar10, cifar100, imagenet).")
@click.option("--download", is_flag=True, default=_DEFAULTS.download, help="Download the dataset into --data-dir if missing.")
@click.option("--dataset-opt", multiple=True, metavar="KEY=VALUE", help="Dataset option (repeatable).")
@click.option("--optimizer", default=_DEFAULTS.optimizer, show_default=True, help="Optimizer name (prunekit list optimizers).")
@click.option("--optimizer-opt", multiple=True, metavar="KEY=VALUE", help="Optimizer option (repeatable).")
@click.option("--lr", type=float, default=None, help="Learning rate [default: the optimizer's].")
@click.option("--weight-decay", type=float, default=None, help="Weight decay on weights [default: the model's].")
@click.option("--pruner", default=None, help="Pruner name [default: the optimizer's, else magnitude].")
@click.option("--pruner-opt", multiple=True, metavar="KEY=VALUE", help="Pruner option (repeatable).")
@click.option(
    "--sparsity",
    type=float,
    default=_DEFAULTS.sparsity,
    show_default=True,
    help="Target fraction of prunable weights set to zero.",
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    default=None,
    help="Sparsity schedule [default: the pruner's (constant for sparse training from step 0), else gmp].",
)
@click.option("--warmup", type=int, default=None, help="Optimizer steps before pruning starts [default: 10% of steps].")
@click.option("--prune-end", type=int, default=None, help="Step at which the target is reached [default: 80% of steps].")
@click.option("--frequency", type=int, default=None, help="Steps between mask updates [default: 50 updates on the ramp].")
@click.option("--epochs", type=int, default=_DEFAULTS.epochs, show_default=True)
@click.option("--batch-size", type=int, default=_DEFAULTS.batch_size, show_default=True)
@click.option(
    "--sampler",
    multiple=True,
    help=f"Memory sampler (repeatable; 'auto' = every one that works here) [default: {', '.join(_DEFAULTS.samplers)}].",
)
@click.option(
    "--sample-interval", type=float, default=_DEFAULTS.sample_interval, show_default=True, help="Seconds between memory samples."
)
@click.option("--device", default=_DEFAULTS.device, show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True)
@click.option("--amp", is_flag=True, default=_DEFAULTS.amp, help="Mixed precision on CUDA (bf16 where supported, else fp16).")
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    default=_DEFAULTS.compile,
    help="torch.compile the forward module (pruners that cannot take it are refused).",
)
@click.option(
    "--channels-last",
    is_flag=True,
    default=_DEFAULTS.channels_last,
    help="channels_last memory format for 4-d weights and inputs.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="DataLoader worker processes for on-disk datasets [default: the cores available less one, 1 to 8].",
)
@click.option("--tracker", multiple=True, help="Experiment tracker to send the run to (repeatable; prunekit list trackers).")
@click.option(
    "--tracker-opt",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="Option of a tracker, e.g. mlflow.experiment=lenet (repeatable).",
)
@click.option(
    "--checkpoint-every",
    type=int,
    default=_DEFAULTS.checkpoint_every,
    show_default=True,
    metavar="N",
    help="Write checkpoint.pt every N epochs (and at the end); 0: only when stopped by SIGTERM/SIGUSR1.",
)
@click.option(
    "--out",
    default=None,
    help="Run directory to create [default: runs/<model>-<dataset>-<optimizer>-<pruner>-s<sparsity>-seed<seed>-<time>].",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path),
    default=None,
    metavar="RUN_DIR",
    help="Continue a stopped run from RUN_DIR/checkpoint.pt with the settings in RUN_DIR/config.yaml.",
)
@click.option("--quiet", "-q", is_flag=True, default=_DEFAULTS.quiet, help="Print only the final summary.")
@click.option(
    "--nproc-per-node",
    type=int,
    default=None,
    help="Train with DDP on N processes of this node (starts torchrun; nccl on CUDA, gloo on CPU). --batch-size stays per process.",
)
@click.pass_context
def run(
    ctx: click.Context, /, config_file: Path | None, resume_dir: Path | None, nproc_per_node: int | None, **options: Any
) -> None:
    """Train one model with one optimizer and pruner; write a run directory.

    SIGTERM or SIGUSR1 stops it after the current step with a checkpoint (exit status 3).
    """
    saved = None
    if resume_dir is None:
        config = build_config(ctx, config_file, options)
    else:
        given = ["--config"] if config_file else []
        given += [
            f"--{p.replace('_', '-')}"
            for p in _RUN_FIELDS
            if p != "quiet" and ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise UsageError(f"--resume takes every setting from {resume_dir / 'config.yaml'}; drop {', '.join(given)}.")
        from prunekit.core.run.resume import open_stopped_run

        config, saved = open_stopped_run(resume_dir)
        config.quiet = config.quiet or options["quiet"]
    from prunekit.core.run.launch import launch, under_torchrun

    if nproc_per_node is not None and nproc_per_node < 1:
        raise UsageError(f"--nproc-per-node must be at least 1, got {nproc_per_node}.")
    if nproc_per_node and nproc_per_node > 1 and not under_torchrun():
        sys.exit(launch(config, nproc_per_node, resume_dir if saved is not None else None, saved))
    from prunekit.core.run.runner import RunFailed, RunInterrupted, TrainingDiverged  # heavy: torch
    from prunekit.core.run.runner import run as run_training
    from prunekit.core.run.trackers import interrupt_on_sigterm
    from prunekit.progress import RunProgress, print_summary

    interrupt_on_sigterm()  # outside the training loop; inside it, SIGTERM checkpoints (RunInterrupted)

    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 prints
    try:
        with RunProgress(config.epochs, quiet=config.quiet or not main_rank) as progress:
            out, summary = run_training(
                config, on_epoch=progress.epoch, on_step=progress.step, warn=progress.warn, resume_from=saved
            )
    except (TrainingDiverged, RunFailed) as exc:
        click.echo(f"Error: run failed: {Redactor().text(str(exc))}", err=True)
        sys.exit(1)
    except RunInterrupted as exc:
        if main_rank:
            click.echo(f"Run {exc}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if main_rank:
        print_summary(out, summary)


def build_config(ctx: click.Context, config_file: Path | None, options: dict[str, Any]) -> RunConfig:
    """Defaults, then the YAML file, then options given on the command line."""
    data = load_yaml_config(config_file) if config_file else {}
    for param, field in _RUN_FIELDS.items():
        source = ctx.get_parameter_source(param)
        value = options[param]
        if param in _PAIR_OPTIONS:
            if value:
                data[field] = {**data.get(field, {}), **parse_pairs(value, _PAIR_OPTIONS[param])}
            continue
        if param in ("sampler", "tracker"):
            if value:
                data[field] = list(value)
            continue
        if param == "tracker_opt":
            for name, opts in parse_tracker_pairs(value).items():
                data.setdefault(field, {})
                data[field][name] = {**data[field].get(name, {}), **opts}
            continue
        if source == click.core.ParameterSource.COMMANDLINE or field not in data:
            if source == click.core.ParameterSource.COMMANDLINE or value is not None:
                data[field] = value
    return config_from_mapping(data)


def parse_tracker_pairs(pairs: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``NAME.key=value`` strings -> {NAME: {key: value}}; a malformed one raises UsageError."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_pairs(pairs, "--tracker-opt").items():
        name, dot, option = key.partition(".")
        if not dot or not name or not option:
            raise UsageError(f"--tracker-opt expects NAME.key=value (e.g. mlflow.experiment=lenet), got {key}={value!r}.")
        out.setdefault(name, {})[option] = value
    return out
