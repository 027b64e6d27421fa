"""Expand a spec into validated run configs; list what is skipped and why.

Rules:

- the grid is the cross product of the axes, on top of the shared settings;
- a pruner that needs optimizer state the optimizer does not keep (the pruner's
  ``requires`` metadata against the optimizer's ``state``) is skipped for that
  optimizer, with the reason;
- a dense pruner (metadata ``dense=True``, such as ``none``) ignores the sparsity and schedule settings: one run per
  combination of the other axes, recorded with sparsity 0 and the default schedule;
- a run without a schedule gets its pruner's default (``constant`` for sparse
  training from step 0, else ``gmp``); a schedule the pruner does not support is
  skipped with the reason; constant-schedule runs ignore warm-up, end and frequency;
- an optimizer or pruner marked ``optional`` that is not installed is skipped;
  any other unknown name, bad option or bad value is an error;
- a grid of more than :data:`MAX_RUNS` combinations is refused, with its size, before expanding;
- every config is checked with :func:`prunekit.core.run.validation.validate` before anything
  runs, and all problems are reported together.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from prunekit.core.config.settings import RunConfig, config_from_mapping
from prunekit.core.plugins.registry import BUNDLED, Entry, Registry
from prunekit.core.run.validation import DEFAULT_PRUNER, DEFAULT_SCHEDULE, resolve_schedule, validate
from prunekit.errors import UsageError
from prunekit.matrix.axes import ALL, AXES, OPTIONS_FIELD, Choice, raise_problems
from prunekit.matrix.hashing import run_id
from prunekit.matrix.spec import MatrixSpec

#: The most runs one spec may expand to (a grid is checked run by run before anything runs).
MAX_RUNS = 10_000

_KIND = {"models": "models", "datasets": "datasets", "optimizers": "optimizers", "pruners": "pruners"}
_SETTING_KIND = {"model": "models", "dataset": "datasets", "optimizer": "optimizers", "pruner": "pruners"}


@dataclass
class PlannedRun:
    """One run of the matrix: its id (directory name) and config."""

    id: str
    config: RunConfig

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "config": {k: v for k, v in self.config.to_dict().items() if k not in ("out", "quiet")}}


@dataclass
class Skipped:
    """Something the grid names that will not run, and why."""

    what: str
    reason: str
    runs: int = 0

    def describe(self) -> dict[str, Any]:
        return {"what": self.what, "reason": self.reason, "runs": self.runs}


@dataclass
class Plan:
    """The expanded matrix."""

    spec: MatrixSpec
    runs: list[PlannedRun]
    skipped: list[Skipped] = field(default_factory=list)
    optimizers: list[str] = field(default_factory=list)


def _add(problems: list[str], message: str) -> None:
    if message not in problems:
        problems.append(message)


def _check_name(
    registry: Registry, kind: str, name: str, optional: bool, problems: list[str], skipped: dict[tuple[str, str], int]
) -> bool:
    try:
        registry.get(kind, name)
        return True
    except UsageError as exc:
        if optional and (kind, name) not in registry.conflicts:
            package = BUNDLED.get((kind, name))
            reason = "not installed" + (f" (install {package})" if package else "")
            skipped.setdefault((f"{kind[:-1]} '{name}'", reason), 0)
            return False
        _add(problems, str(exc))
        return False


def _axis_values(
    spec: MatrixSpec, registry: Registry, problems: list[str], skipped: dict[tuple[str, str], int]
) -> tuple[dict[str, list[Any]], list[str]]:
    """Axis values with unknown optional names removed and ``all`` expanded."""
    values: dict[str, list[Any]] = {}
    for axis, items in spec.axes.items():
        kept = []
        for item in items:
            if isinstance(item, Choice) and axis in _KIND:
                if _check_name(registry, _KIND[axis], item.name, item.optional, problems, skipped):
                    kept.append(item)
            elif axis == "models":
                if _check_name(registry, "models", item, False, problems, skipped):
                    kept.append(item)
            elif axis == "samplers":
                if all([_check_name(registry, "samplers", s, False, problems, skipped) for s in item if s != "auto"]):
                    kept.append(item)
            else:
                kept.append(item)
        values[axis] = kept
    optimizers = values.get("optimizers")
    expanded: list[str] = []
    if optimizers is not None and ALL in optimizers:
        listed = {c.name for c in optimizers if isinstance(c, Choice)}
        rest = [Choice(n) for n in registry.names("optimizers") if n not in listed]
        out: list[Any] = []
        for item in optimizers:
            out.extend(rest if item == ALL else [item])
        values["optimizers"] = out
    if "optimizers" in values:
        expanded = [c.name for c in values["optimizers"]]
    for key, kind in _SETTING_KIND.items():
        if key in spec.settings and spec.settings[key] is not None:
            _check_name(registry, kind, spec.settings[key], False, problems, skipped)
    for name in spec.settings.get("samplers", []) or []:
        if name != "auto":
            _check_name(registry, "samplers", name, False, problems, skipped)
    return values, expanded


def _mapping(spec: MatrixSpec, point: dict[str, Any]) -> dict[str, Any]:
    data = dict(spec.settings)
    for axis, value in point.items():
        target = AXES[axis]
        if isinstance(value, Choice):
            data[target] = value.name
            for key, item in value.settings.items():
                if key in OPTIONS_FIELD.values():
                    data[key] = {**data.get(key, {}), **item}
                else:
                    data[key] = item
        else:
            data[target] = value
    return data


def _incompatible(optimizer: Entry, pruner: Entry) -> list[str]:
    return [s for s in pruner.metadata["requires"] if s not in optimizer.metadata["state"]]


def expand(spec: MatrixSpec, registry: Registry) -> Plan:
    """The validated runs of ``spec``; raises one UsageError listing every problem."""
    problems: list[str] = []
    skipped: dict[tuple[str, str], int] = {}
    values, optimizers = _axis_values(spec, registry, problems, skipped)
    raise_problems(f"Matrix spec {spec.source}", problems)

    axes = [a for a in AXES if a in values]
    size = math.prod(len(values[a]) for a in axes)
    if size > MAX_RUNS:
        counts = " x ".join(f"{len(values[a])} {a}" for a in axes if len(values[a]) > 1)
        raise UsageError(
            f"Matrix spec {spec.source} is a grid of {size:,} runs ({counts}); at most {MAX_RUNS:,} are expanded. "
            "Split it into smaller specs."
        )
    runs: dict[str, PlannedRun] = {}
    for combo in itertools.product(*(values[a] for a in axes)):
        point = dict(zip(axes, combo))
        try:
            config = config_from_mapping(_mapping(spec, point))
        except UsageError as exc:
            _add(problems, str(exc))
            continue
        optimizer = registry.get("optimizers", config.optimizer)
        pruner_name = config.pruner or optimizer.metadata.get("default_pruner") or DEFAULT_PRUNER
        try:
            pruner = registry.get("pruners", pruner_name)
        except UsageError as exc:
            _add(problems, str(exc))
            continue
        missing = _incompatible(optimizer, pruner)
        if missing:
            what = f"optimizer '{optimizer.name}' + pruner '{pruner.name}'"
            reason = (
                f"pruner '{pruner.name}' needs optimizer state {', '.join(missing)}, "
                f"which optimizer '{optimizer.name}' does not keep"
            )
            skipped[(what, reason)] = skipped.get((what, reason), 0) + 1
            continue
        config.pruner = pruner.name
        if pruner.metadata["dense"]:  # dense: nothing to ramp, so one run whatever the sparsity axes say
            config.schedule, config.warmup, config.prune_end, config.frequency = DEFAULT_SCHEDULE, None, None, None
            config.sparsity, config.pruner_opts = 0.0, {}
        try:
            config.schedule = resolve_schedule(config.schedule, pruner)
        except UsageError as exc:
            what = f"pruner '{pruner.name}' + schedule '{config.schedule}'"
            skipped[(what, str(exc))] = skipped.get((what, str(exc)), 0) + 1
            continue
        if config.schedule == "constant":  # the target from step 0: no ramp settings apply
            config.warmup, config.prune_end, config.frequency = None, None, None
        try:
            validate(config, registry)
        except UsageError as exc:
            _add(problems, str(exc))
            continue
        planned = PlannedRun(run_id(config), config)
        runs.setdefault(planned.id, planned)
    raise_problems(f"Matrix spec {spec.source}", problems)

    skips = [Skipped(what, reason, count) for (what, reason), count in skipped.items()]
    if not runs:
        why = "; ".join(f"{s.what}: {s.reason}" for s in skips) or "an axis has no usable values"
        raise UsageError(f"Matrix spec {spec.source} has no runs to do ({why}).")
    return Plan(spec, list(runs.values()), skips, optimizers)
