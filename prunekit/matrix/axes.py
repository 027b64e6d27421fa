"""The axes of a matrix spec: their names, and the checking of each axis's values.

Every problem found is collected (:class:`Problems`) so a spec's problems are
reported together, in one line (:func:`raise_problems`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from prunekit.core.config.settings import config_from_mapping
from prunekit.errors import UsageError

#: In the optimizers axis: every installed optimizer.
ALL = "all"

#: Axis key -> the RunConfig field it sets.
AXES: dict[str, str] = {
    "models": "model",
    "datasets": "dataset",
    "optimizers": "optimizer",
    "pruners": "pruner",
    "sparsities": "sparsity",
    "schedules": "schedule",
    "lrs": "lr",
    "batch_sizes": "batch_size",
    "epochs": "epochs",
    "samplers": "samplers",
    "seeds": "seed",
}
#: Keys allowed in the mapping form of an entry, per axis.
ENTRY_KEYS = {
    "datasets": ("name", "options", "data_dir", "download"),
    "optimizers": ("name", "options", "lr", "weight_decay", "optional"),
    "pruners": ("name", "options", "optional"),
}
#: Which options field a mapping entry's ``options`` fills.
OPTIONS_FIELD = {"datasets": "dataset_opts", "optimizers": "optimizer_opts", "pruners": "pruner_opts"}
_NUMBER_AXES = {"sparsities": float, "lrs": float, "seeds": int, "epochs": int, "batch_sizes": int}


@dataclass(frozen=True)
class Choice:
    """One value of a named axis: a plugin name, its options and extra settings."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    optional: bool = False

    def key(self) -> str:
        return json.dumps([self.name, self.settings], sort_keys=True, default=str)


def entry_form(choice: Choice) -> dict[str, Any]:
    """A choice in the spec's own mapping form."""
    back = {v: "options" for v in OPTIONS_FIELD.values()}
    return {
        "name": choice.name,
        **{back.get(k, k): v for k, v in choice.settings.items()},
        **({"optional": True} if choice.optional else {}),
    }


def canon(key: Any) -> str:
    return str(key).replace("-", "_")


class Problems:
    """Collects every problem so they are reported at once."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def add(self, message: str) -> None:
        if message not in self.items:
            self.items.append(message)

    def raise_if_any(self) -> None:
        raise_problems(self.where, self.items)


def raise_problems(where: str, problems: list[str]) -> None:
    """One UsageError naming every problem (one line)."""
    if not problems:
        return
    if len(problems) == 1:
        raise UsageError(f"{where}: {problems[0]}")
    listed = " ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
    raise UsageError(f"{where} has {len(problems)} problems: {listed}")


def check_number(axis: str, value: Any, kind: type, problems: Problems) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        problems.add(f"Axis '{axis}' takes {'integers' if kind is int else 'numbers'}, got {value!r}.")
        return None
    return kind(value)


def parse_choice(axis: str, value: Any, problems: Problems) -> Choice | str | None:
    if isinstance(value, str):
        if axis == "optimizers" and value == ALL:
            return ALL
        return Choice(value)
    if isinstance(value, dict) and axis in ENTRY_KEYS:
        value = {canon(k): v for k, v in value.items()}
        unknown = sorted(set(value) - set(ENTRY_KEYS[axis]))
        if unknown:
            problems.add(f"Unknown key '{unknown[0]}' in an entry of '{axis}'. Valid: {', '.join(ENTRY_KEYS[axis])}.")
            return None
        name = value.get("name")
        if not isinstance(name, str) or not name:
            problems.add(f"An entry of '{axis}' needs a 'name' (a string), got {value!r}.")
            return None
        settings: dict[str, Any] = {}
        for key, item in value.items():
            if key in ("name", "optional"):
                continue
            target = OPTIONS_FIELD[axis] if key == "options" else key
            if key == "options" and not isinstance(item, dict):
                problems.add(f"'options' of {axis[:-1]} '{name}' must be a mapping, got {item!r}.")
                continue
            try:
                config_from_mapping({target: item})
            except UsageError as exc:
                problems.add(f"In {axis[:-1]} '{name}': {exc}")
                continue
            settings[target] = dict(item) if key == "options" else item
        optional = value.get("optional", False)
        if not isinstance(optional, bool):
            problems.add(f"'optional' of {axis[:-1]} '{name}' must be true or false, got {optional!r}.")
        return Choice(name, settings, optional is True)
    forms = "a name or a mapping with 'name'" if axis in ENTRY_KEYS else "a name"
    problems.add(f"Each value of '{axis}' must be {forms}, got {value!r}.")
    return None


def parse_axis(axis: str, raw: Any, problems: Problems) -> list[Any]:
    if axis == "optimizers" and raw == ALL:
        return [ALL]
    if axis == "samplers":
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            problems.add(f"Axis 'samplers' must be a list of sampler sets, got {raw!r}.")
            return []
        values = []
        for item in raw:
            group = [item] if isinstance(item, str) else item
            if not isinstance(group, list) or not group or not all(isinstance(s, str) for s in group):
                problems.add(f"Each value of 'samplers' must be a sampler name or a list of names, got {item!r}.")
                continue
            values.append(sorted(dict.fromkeys(group)))
        return values
    if not isinstance(raw, list):
        raw = [raw]
    values = []
    for item in raw:
        if axis in _NUMBER_AXES:
            parsed = check_number(axis, item, _NUMBER_AXES[axis], problems)
        elif axis in ("models", "schedules"):
            parsed = item if isinstance(item, str) else None
            if parsed is None:
                problems.add(f"Each value of '{axis}' must be a name, got {item!r}.")
        else:
            parsed = parse_choice(axis, item, problems)
        if parsed is not None:
            values.append(parsed)
    return values


def dedup(values: list[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for v in values:
        key = v.key() if isinstance(v, Choice) else json.dumps(v, sort_keys=True, default=str)
        seen.setdefault(key, v)
    return list(seen.values())
