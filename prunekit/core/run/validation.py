"""Validation of a run before anything runs: every name against the registry, every number,
every plugin option; the result is a :class:`ResolvedRun`. Cheap: builds no model, reads no data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from prunekit.core.config.options import resolve_options
from prunekit.core.config.settings import RunConfig
from prunekit.core.plugins.registry import Entry, Registry
from prunekit.core.sparsity.schedule import SCHEDULES
from prunekit.core.sparsity.structure import structure_problem
from prunekit.core.tracking.protocol import COMMON_OPTIONS
from prunekit.errors import UsageError

DEFAULT_PRUNER = "magnitude"
DEFAULT_SCHEDULE = "gmp"
#: The shortest interval between memory samples, in seconds (100 a second).
MIN_SAMPLE_INTERVAL = 0.01
#: Settings that name something (a plugin, a device, a directory): never empty, never a control character.
NAME_SETTINGS = ("model", "dataset", "optimizer", "pruner", "device", "out", "data_dir")
#: The largest seed (numpy's generators take 32 bits).
MAX_SEED = 2**32 - 1
#: Settings of the ramp schedules (gmp, cubic, linear) that the constant schedule refuses.
RAMP_SETTINGS = ("warmup", "prune_end", "frequency")


def resolve_schedule(schedule: str | None, pruner: Entry) -> str:
    """The run's schedule: the one named, else the pruner's first supported, else gmp.

    Raises UsageError when the pruner does not support the named schedule.
    """
    supported = tuple(pruner.metadata.get("schedules") or ())
    if schedule is None:
        return supported[0] if supported else DEFAULT_SCHEDULE
    if supported and schedule not in supported:
        which = (
            f"only the {supported[0]} schedule"
            if len(supported) == 1
            else f"the {', '.join(supported[:-1])} or {supported[-1]} schedules"
        )
        raise UsageError(
            f"Pruner '{pruner.name}' supports {which}, not '{schedule}'; drop --schedule or use --schedule {supported[0]}."
        )
    return schedule


@dataclass
class ResolvedRun:
    """A validated config with its plugin entries and resolved options."""

    config: RunConfig
    model: Entry
    dataset: Entry
    optimizer: Entry
    pruner: Entry
    samplers: list[Entry]
    dataset_opts: dict[str, Any]
    optimizer_opts: dict[str, Any]
    pruner_opts: dict[str, Any]
    trackers: list[Entry] = field(default_factory=list)
    tracker_opts: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_opts: dict[str, Any] = field(default_factory=dict)


def validate(config: RunConfig, registry: Registry) -> ResolvedRun:
    """Check every name, number and option; raise UsageError on the first problem.

    Cheap: builds no model and reads no data, so it can vet a whole grid up front.
    """
    c = config
    if not 0.0 <= c.sparsity < 1.0:
        raise UsageError(f"Sparsity must be in [0, 1), got {c.sparsity}.")
    if c.epochs < 1:
        raise UsageError(f"Epochs must be at least 1, got {c.epochs}.")
    if c.batch_size < 1:
        raise UsageError(f"Batch size must be at least 1, got {c.batch_size}.")
    if c.schedule is not None and c.schedule not in SCHEDULES:
        raise UsageError(f"Unknown schedule '{c.schedule}'. Available: {', '.join(SCHEDULES)}.")
    if c.frequency is not None and c.frequency < 1:
        raise UsageError(f"Frequency must be at least 1 optimizer step, got {c.frequency}.")
    if c.warmup is not None and c.warmup < 0:
        raise UsageError(f"Warm-up must be at least 0 steps, got {c.warmup}.")
    if c.prune_end is not None and c.prune_end < 1:
        raise UsageError(f"Prune end must be at least 1 step, got {c.prune_end}.")
    if c.warmup is not None and c.prune_end is not None and c.prune_end <= c.warmup:
        raise UsageError(f"Prune end ({c.prune_end}) must come after warm-up ({c.warmup}).")
    if c.lr is not None and not (math.isfinite(c.lr) and c.lr > 0):
        raise UsageError(f"Learning rate must be a positive finite number, got {c.lr}.")
    if c.weight_decay is not None and not (math.isfinite(c.weight_decay) and c.weight_decay >= 0):
        raise UsageError(f"Weight decay must be a finite number >= 0, got {c.weight_decay}.")
    if not (math.isfinite(c.sample_interval) and c.sample_interval > 0):
        raise UsageError(f"Sample interval must be a positive finite number of seconds, got {c.sample_interval}.")
    if c.sample_interval < MIN_SAMPLE_INTERVAL:
        raise UsageError(f"Sample interval must be at least {MIN_SAMPLE_INTERVAL} s, got {c.sample_interval}.")
    for name in NAME_SETTINGS:
        value = getattr(c, name)
        if value is not None and (not value.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)):
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be a non-empty name without control characters, got {value!r}.")
    if not 0 <= c.seed <= MAX_SEED:
        raise UsageError(f"Seed must be an integer from 0 to {MAX_SEED} (2**32 - 1), got {c.seed}.")
    if c.workers is not None and c.workers < 0:
        raise UsageError(f"Workers must be at least 0, got {c.workers}.")
    if c.checkpoint_every < 0:
        raise UsageError(f"Checkpoint interval must be at least 0 epochs (0: no periodic checkpoints), got {c.checkpoint_every}.")
    if c.device != "auto" and c.device != "cpu" and not c.device.startswith("cuda"):
        raise UsageError(f"Unknown device '{c.device}'. Valid: auto, cpu, cuda, cuda:N.")

    model = registry.get("models", c.model)
    dataset = registry.get("datasets", c.dataset)
    optimizer = registry.get("optimizers", c.optimizer)
    pruner_name = c.pruner or optimizer.metadata.get("default_pruner") or DEFAULT_PRUNER
    pruner = registry.get("pruners", pruner_name)
    samplers = []
    for name in dict.fromkeys(c.samplers):
        if name != "auto":
            samplers.append(registry.get("samplers", name))

    c = replace(c, schedule=resolve_schedule(c.schedule, pruner))
    if c.schedule == "constant":
        given = [name for name in RAMP_SETTINGS if getattr(c, name) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UsageError(
                f"{flag} does not apply to the constant schedule (the target from step 0); drop it or choose gmp, cubic or linear."
            )

    trackers = [registry.get("trackers", name) for name in dict.fromkeys(c.trackers)]
    tracker_opts = resolve_tracker_options(trackers, c.tracker_opts)

    missing = [s for s in pruner.metadata["requires"] if s not in optimizer.metadata["state"]]
    if missing:
        able = [
            name
            for name, e in registry.entries["optimizers"].items()
            if all(s in e.metadata["state"] for s in pruner.metadata["requires"])
        ]
        raise UsageError(
            f"Pruner '{pruner.name}' needs optimizer state {', '.join(missing)}, which optimizer "
            f"'{optimizer.name}' does not keep. Use one of: {', '.join(sorted(able)) or 'none installed'}."
        )
    if c.compile and not pruner.metadata["compiles"]:
        raise UsageError(
            f"Pruner '{pruner.name}' cannot run under --compile (its plugin declares compiles=False); run it without --compile."
        )
    pruner_opts = resolve_options(pruner.options, c.pruner_opts, f"pruner '{pruner.name}'")
    problem = structure_problem(pruner_opts, c.sparsity)
    if problem:
        raise UsageError(f"Pruner '{pruner.name}': {problem}.")
    return ResolvedRun(
        config=c,
        model=model,
        dataset=dataset,
        optimizer=optimizer,
        pruner=pruner,
        samplers=samplers,
        dataset_opts=resolve_options(dataset.options, c.dataset_opts, f"dataset '{dataset.name}'"),
        optimizer_opts=resolve_options(optimizer.options, c.optimizer_opts, f"optimizer '{optimizer.name}'"),
        pruner_opts=pruner_opts,
        trackers=trackers,
        tracker_opts=tracker_opts,
        model_opts=resolve_options(model.options, c.model_opts, f"model '{c.model}'"),
    )


def resolve_tracker_options(trackers: list[Entry], given: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each chosen tracker's options (its declared ones plus the core's ``finish_timeout_s``)."""
    chosen = {e.name for e in trackers}
    stray = sorted(set(given) - chosen)
    if stray:
        raise UsageError(
            f"Options given for tracker '{stray[0]}', which is not enabled; add --tracker {stray[0]} "
            f"(enabled: {', '.join(sorted(chosen)) or 'none'})."
        )
    return {
        e.name: resolve_options((*e.options, *COMMON_OPTIONS), given.get(e.name, {}), f"tracker '{e.name}'") for e in trackers
    }
