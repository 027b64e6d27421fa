"""The settings of one run: defaults, YAML files, and validation before anything runs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from prunekit.core.options import resolve_options
from prunekit.core.registry import Entry, Registry
from prunekit.core.schedule import SCHEDULES
from prunekit.core.tracking import COMMON_OPTIONS
from prunekit.errors import UsageError

DEFAULT_PRUNER = "magnitude"
DEFAULT_SCHEDULE = "gmp"
_CONSTANT_ONLY = ("warmup", "prune_end", "frequency")


@dataclass
class RunConfig:
    """Everything that defines a run. ``None`` means "the plugin's or schedule's default"
    (``schedule=None``: the pruner's default schedule, else gmp)."""

    model: str = "lenet5"
    model_opts: dict[str, Any] = field(default_factory=dict)
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    dataset_opts: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adamw"
    optimizer_opts: dict[str, Any] = field(default_factory=dict)
    lr: float | None = None
    weight_decay: float | None = None
    pruner: str | None = None
    pruner_opts: dict[str, Any] = field(default_factory=dict)
    sparsity: float = 0.7
    schedule: str | None = None
    warmup: int | None = None
    prune_end: int | None = None
    frequency: int | None = None
    epochs: int = 20
    batch_size: int = 32
    samplers: list[str] = field(default_factory=lambda: ["process"])
    sample_interval: float = 0.5
    device: str = "auto"
    seed: int = 0
    amp: bool = False
    workers: int = 0
    checkpoint_every: int = 1
    out: str | None = None
    quiet: bool = False
    trackers: list[str] = field(default_factory=list)
    tracker_opts: dict[str, dict[str, Any]] = field(default_factory=dict)
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELD_NAMES = tuple(f.name for f in fields(RunConfig))
#: Fields that watch a run without changing what it computes (not part of run ids or spec hashes).
TRACKING_FIELDS = ("trackers", "tracker_opts", "group")


def load_yaml_config(path: Path) -> dict[str, Any]:
    """Read a run config file: a mapping of RunConfig fields. Unknown keys are errors."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"Config file {path} does not exist.") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"Config file {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "give a YAML file saved as UTF-8."
        ) from None
    except OSError as exc:
        raise UsageError(f"Cannot read config file {path}: {exc.strerror or exc}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"Config file {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"Config file {path} must be a mapping of settings, got {type(data).__name__}.")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(FIELD_NAMES))
    if unknown:
        raise UsageError(f"Unknown key '{unknown[0]}' in {path}. Valid keys: {', '.join(FIELD_NAMES)}.")
    return data


def _check_type(name: str, value: Any, kind: type | tuple[Any, ...]) -> Any:
    wants_float = kind is float or (isinstance(kind, tuple) and float in kind)
    if wants_float and isinstance(value, str):  # PyYAML reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) and kind in (int, float):
        raise UsageError(f"Setting '{name}' must be {kind.__name__}, got {value!r}.")
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UsageError(f"Setting '{name}' must be {expected}, got {value!r}.")
    return value


def config_from_mapping(data: dict[str, Any]) -> RunConfig:
    """Build a RunConfig from a mapping, checking each value's type."""
    types: dict[str, type | tuple[Any, ...]] = {
        "model": str,
        "model_opts": dict,
        "dataset": str,
        "data_dir": (str, type(None)),
        "download": bool,
        "dataset_opts": dict,
        "optimizer": str,
        "optimizer_opts": dict,
        "lr": (float, int, type(None)),
        "weight_decay": (float, int, type(None)),
        "pruner": (str, type(None)),
        "pruner_opts": dict,
        "sparsity": float,
        "schedule": (str, type(None)),
        "warmup": (int, type(None)),
        "prune_end": (int, type(None)),
        "frequency": (int, type(None)),
        "epochs": int,
        "batch_size": int,
        "samplers": list,
        "sample_interval": float,
        "device": str,
        "seed": int,
        "amp": bool,
        "workers": int,
        "checkpoint_every": int,
        "out": (str, type(None)),
        "quiet": bool,
        "trackers": list,
        "tracker_opts": dict,
        "group": (str, type(None)),
    }
    clean = {}
    for key, value in data.items():
        if key not in types:
            raise UsageError(f"Unknown setting '{key}'. Valid: {', '.join(FIELD_NAMES)}.")
        if key == "data_dir" and isinstance(value, Path):
            value = str(value)
        clean[key] = _check_type(key, value, types[key])
    if not all(isinstance(name, str) for name in clean.get("trackers", [])):
        raise UsageError(f"Setting 'trackers' must be a list of tracker names, got {clean['trackers']!r}.")
    for name, opts in clean.get("tracker_opts", {}).items():
        if not isinstance(opts, dict):
            raise UsageError(f"Setting 'tracker_opts' maps tracker names to options, got {name}: {opts!r}.")
    for key in ("lr", "weight_decay"):
        if isinstance(clean.get(key), int):
            clean[key] = float(clean[key])
    return RunConfig(**clean)


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
    if c.workers < 0:
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
        given = [name for name in _CONSTANT_ONLY if getattr(c, name) is not None]
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
    return ResolvedRun(
        config=c,
        model=model,
        dataset=dataset,
        optimizer=optimizer,
        pruner=pruner,
        samplers=samplers,
        dataset_opts=resolve_options(dataset.options, c.dataset_opts, f"dataset '{dataset.name}'"),
        optimizer_opts=resolve_options(optimizer.options, c.optimizer_opts, f"optimizer '{optimizer.name}'"),
        pruner_opts=resolve_options(pruner.options, c.pruner_opts, f"pruner '{pruner.name}'"),
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
