"""A matrix spec: values per axis plus shared settings, read from YAML and checked.

Shape (every axis optional; a single value may stand for a one-item list)::

    name: digits-quick            # default: the file name
    description: one line
    models: [lenet5]
    datasets: [digits]            # or {name: synthetic, options: {train_size: 64}}
    optimizers: all               # every installed optimizer; or a list mixing names,
                                  # {name, options, lr, weight_decay, optional} and "all"
    pruners: [none, magnitude, {name: movement, options: {...}, optional: true}]
    sparsities: [0.5, 0.7, 0.9]
    seeds: [0, 1, 2]
    epochs: [10]
    batch_sizes: [32]
    schedules: [gmp]
    lrs: [0.001]
    samplers: [[process, torch]]  # each value is one run's sampler set
    settings: {...}               # any RunConfig field except out, quiet and group,
                                  # e.g. trackers: [tensorboard, mlflow] and
                                  # tracker_opts: {mlflow: {tracking_uri: http://127.0.0.1:5000}}

``optional: true`` on an optimizer or pruner means "skip it, with the reason, when
it is not installed"; without it an unknown name is an error. ``all`` expands, when
the matrix runs, to the optimizers installed then (those listed explicitly keep their
own settings). Checking names against plugins happens in :mod:`prunekit.matrix.expand`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prunekit.core.config import yamlfile
from prunekit.core.config.settings import FIELD_NAMES, TRACKING_FIELDS, config_from_mapping
from prunekit.errors import UsageError
from prunekit.matrix.axes import (
    AXES,
    Choice,
    Problems,
    canon,
    dedup,
    entry_form,
    parse_axis,
)


class _Loader(yamlfile.StrictLoader):
    """Strict safe YAML (:mod:`prunekit.core.config.yamlfile`) that also reads ``1e-3`` as a number (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """Parse and bound ``text``: ``yaml.YAMLError`` or :class:`~prunekit.core.config.yamlfile.TooLarge`."""
    return yamlfile.load(text, _Loader)


TOP_KEYS = ("name", "description", *AXES, "settings")
#: RunConfig fields the matrix decides itself.
RESERVED = ("out", "quiet", "group")


@dataclass
class MatrixSpec:
    """A checked spec. ``axes`` maps axis keys to their values (``Choice`` for named axes,
    plain values otherwise; ``ALL`` may appear among optimizers)."""

    name: str
    description: str
    axes: dict[str, list[Any]]
    settings: dict[str, Any]
    normalized: dict[str, Any]
    source: str = ""

    @property
    def spec_hash(self) -> str:
        """Stable hash of what defines the grid (name, description and trackers excluded)."""
        data = {k: v for k, v in self.normalized.items() if k not in ("name", "description")}
        data["settings"] = {k: v for k, v in data["settings"].items() if k not in TRACKING_FIELDS}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_spec(
    data: Any, where: str = "spec", default_name: str = "matrix", overrides: dict[str, Any] | None = None
) -> MatrixSpec:
    """Check a parsed YAML spec; every problem is reported at once as a UsageError.

    ``overrides`` are settings given on the command line; they replace the spec's.
    """
    problems = Problems(f"Matrix spec {where}")
    if data is None or data == {}:
        raise UsageError(
            f"Matrix spec {where} is empty; give at least one axis ({', '.join(AXES)}) or settings "
            "(see prunekit matrix --example digits-quick --print)."
        )
    if not isinstance(data, dict):
        raise UsageError(f"Matrix spec {where} must be a mapping of axes and settings, got {type(data).__name__}.")
    data = {canon(k): v for k, v in data.items()}
    for key in data:
        if key not in TOP_KEYS:
            hint = " (a setting: put it under 'settings:')" if key in FIELD_NAMES else ""
            problems.add(f"Unknown key '{key}'{hint}. Valid keys: {', '.join(TOP_KEYS)}.")

    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        problems.add(f"'name' must be a non-empty string, got {name!r}.")
        name = default_name
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.add(f"'description' must be a string, got {description!r}.")
        description = ""

    raw_settings = data.get("settings") or {}
    if not isinstance(raw_settings, dict):
        problems.add(f"'settings' must be a mapping of run settings, got {raw_settings!r}.")
        raw_settings = {}
    raw_settings = {canon(k): v for k, v in raw_settings.items()}
    overrides = {canon(k): v for k, v in (overrides or {}).items()}
    raw_settings.update(overrides)
    for axis, target in AXES.items():  # a command-line setting replaces that axis
        if target in overrides:
            data.pop(axis, None)
    settings: dict[str, Any] = {}
    for key, value in raw_settings.items():
        if key in RESERVED:
            problems.add(f"Setting '{key}' is decided by prunekit matrix; remove it.")
            continue
        if key not in FIELD_NAMES:
            problems.add(f"Unknown setting '{key}'. Valid: {', '.join(f for f in FIELD_NAMES if f not in RESERVED)}.")
            continue
        try:
            config_from_mapping({key: value})
        except UsageError as exc:
            problems.add(str(exc))
            continue
        settings[key] = value

    axes: dict[str, list[Any]] = {}
    for axis, target in AXES.items():
        if axis not in data:
            continue
        values = dedup(parse_axis(axis, data[axis], problems))
        if data[axis] in ([], None):
            problems.add(f"Axis '{axis}' is empty; give at least one value or leave it out.")
        if target in settings:
            problems.add(f"'{target}' is both an axis ('{axis}') and a setting; keep one.")
        axes[axis] = values
    problems.raise_if_any()

    normalized: dict[str, Any] = {"name": name, "description": description, "settings": settings}
    for axis, values in axes.items():
        normalized[axis] = [entry_form(v) if isinstance(v, Choice) else v for v in values]
    return MatrixSpec(name, description, axes, settings, normalized, where)


def load_spec(path: Path | str, overrides: dict[str, Any] | None = None, source: str | None = None) -> MatrixSpec:
    """Read and check a spec file."""
    path = Path(path)
    where = source or str(path)
    text = yamlfile.read_text(path, "Matrix spec")
    return spec_from_text(text, where, path.stem, overrides)


def spec_from_text(text: str, where: str, default_name: str, overrides: dict[str, Any] | None = None) -> MatrixSpec:
    try:
        data = load_yaml(text)
    except (yaml.YAMLError, yamlfile.TooLarge) as exc:
        raise UsageError(f"Matrix spec {where} {yamlfile.describe_error(exc)}.") from None
    spec = parse_spec(data, where, default_name, overrides)
    spec.source = where
    return spec
