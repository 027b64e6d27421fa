"""The settings of one run: :class:`RunConfig`, its defaults, and reading it from YAML or a
mapping with each value's type checked. :mod:`prunekit.core.run.validation` checks it against
the installed plugins."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, cast, get_args, get_origin, get_type_hints

import yaml

from prunekit.core.config import yamlfile
from prunekit.errors import UsageError


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
    compile: bool = False
    channels_last: bool = False
    workers: int | None = None
    checkpoint_every: int = 1
    out: str | None = None
    quiet: bool = False
    trackers: list[str] = field(default_factory=list)
    tracker_opts: dict[str, dict[str, Any]] = field(default_factory=dict)
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELD_NAMES = tuple(f.name for f in fields(RunConfig))


def _accepted(hint: Any) -> type | tuple[type, ...]:
    """What a setting accepts, from its annotation: ``dict[str, Any]`` -> dict,
    ``str | None`` -> (str, NoneType), ``float | None`` -> (float, int, NoneType)."""
    if not isinstance(hint, UnionType):
        return cast(type, get_origin(hint) or hint)
    kinds: list[type] = []
    for arg in get_args(hint):
        kinds += [arg, int] if arg is float else [get_origin(arg) or arg]
    return tuple(kinds)


#: The types each RunConfig field accepts (its annotation is the one place that says so).
_ACCEPTED = {name: _accepted(hint) for name, hint in get_type_hints(RunConfig).items()}

#: Fields that hold a list of plugin names (``list[str]``).
_NAME_LISTS = tuple(name for name, hint in get_type_hints(RunConfig).items() if hint == list[str])

#: Fields that watch a run without changing what it computes (not part of run ids or spec hashes).
TRACKING_FIELDS = ("trackers", "tracker_opts", "group")


def load_yaml_config(path: Path) -> dict[str, Any]:
    """Read a run config file: a mapping of RunConfig fields. Unknown keys are errors."""
    path = Path(path)
    text = yamlfile.read_text(path, "Config file")
    try:
        data = yamlfile.load(text)
    except (yaml.YAMLError, yamlfile.TooLarge) as exc:
        raise UsageError(f"Config file {path} {yamlfile.describe_error(exc)}.") from None
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
    clean = {}
    for key, value in data.items():
        if key not in _ACCEPTED:
            raise UsageError(f"Unknown setting '{key}'. Valid: {', '.join(FIELD_NAMES)}.")
        if key == "data_dir" and isinstance(value, Path):
            value = str(value)
        clean[key] = _check_type(key, value, _ACCEPTED[key])
    for key in _NAME_LISTS:
        if not all(isinstance(name, str) for name in clean.get(key, [])):
            raise UsageError(f"Setting '{key}' must be a list of {key[:-1]} names, got {clean[key]!r}.")
    for name, opts in clean.get("tracker_opts", {}).items():
        if not isinstance(opts, dict):
            raise UsageError(f"Setting 'tracker_opts' maps tracker names to options, got {name}: {opts!r}.")
    for key in ("lr", "weight_decay"):
        if isinstance(clean.get(key), int):
            clean[key] = float(clean[key])
    return RunConfig(**clean)
