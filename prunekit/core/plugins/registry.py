"""What plugins registered: one namespace per kind, with provenance."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prunekit.core.config.options import Option
from prunekit.core.plugins.kinds import KIND_SPECS, KINDS, check_registration
from prunekit.errors import UsageError

#: Metadata keys each kind of registration accepts, with their defaults (owned by prunekit.core.plugins.kinds).
METADATA: dict[str, dict[str, Any]] = {k.name: {m: meta.default for m, meta in k.metadata.items()} for k in KIND_SPECS.values()}

#: Names provided by the bundled plugins, so an unknown name can say what to install.
BUNDLED = {
    ("pruners", "state"): "prunekit-adamwprune",
    ("optimizers", "adamwprune"): "prunekit-adamwprune",
    ("pruners", "movement"): "prunekit-movement",
    ("pruners", "movement-w0"): "prunekit-movement",
    ("pruners", "rigl"): "prunekit-dst",
    ("pruners", "set"): "prunekit-dst",
    ("pruners", "snip"): "prunekit-dst",
    ("pruners", "random"): "prunekit-dst",
    ("samplers", "nvidia"): "prunekit-nvidia-mem",
    ("samplers", "rocm"): "prunekit-rocm-mem",
    ("trackers", "tensorboard"): "prunekit-tensorboard",
    ("trackers", "mlflow"): "prunekit-mlflow",
    ("trackers", "wandb"): "prunekit-wandb",
}

_SINGULAR = {k: k[:-1] for k in KINDS}


@dataclass(frozen=True)
class Entry:
    """One registered name."""

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    options: tuple[Option, ...]
    metadata: Mapping[str, Any]
    plugin: str
    distribution: str
    version: str

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description of this entry."""
        return {
            "name": self.name,
            "description": self.description,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "options": [
                {
                    "name": o.name,
                    "type": o.type.__name__,
                    "default": o.default,
                    "help": o.help,
                    **({"choices": list(o.choices)} if o.choices else {}),
                }
                for o in self.options
            ],
            "metadata": {k: list(v) if isinstance(v, tuple) else v for k, v in self.metadata.items()},
        }


class RegistrationError(Exception):
    """A plugin registered something invalid (duplicate name, bad metadata)."""


@dataclass
class Registry:
    """Entries of every kind, keyed by name."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    #: (kind, name) registered by two plugins -> the error naming both.
    conflicts: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        """Add an entry; a duplicate name becomes a conflict that fails on use."""
        existing = self.entries[entry.kind].get(entry.name)
        if existing is not None:
            message = (
                f"{_SINGULAR[entry.kind].capitalize()} '{entry.name}' is registered by both "
                f"{existing.plugin} ({existing.distribution}) and {entry.plugin} ({entry.distribution})."
            )
            self.conflicts[(entry.kind, entry.name)] = message
            raise RegistrationError(message)
        self.entries[entry.kind][entry.name] = entry

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Entry:
        """Return the entry or raise UsageError listing what is available."""
        entries = self.entries[kind]
        if (kind, name) in self.conflicts:
            raise UsageError(self.conflicts[(kind, name)] + " Uninstall one of them.")
        if name in entries:
            return entries[name]
        for pattern, entry in entries.items():  # wildcard families such as "timm:*"
            if "*" in pattern and fnmatch.fnmatchcase(name, pattern):
                return entry
        message = f"Unknown {_SINGULAR[kind]} '{name}'. Available: {', '.join(self.names(kind)) or 'none'}."
        package = BUNDLED.get((kind, name))
        if package:
            message += f" Install {package}."
        raise UsageError(message)


def make_register(
    registry: Registry,
    kind: str,
    plugin: str,
    distribution: str,
    version: str,
    on_error: Callable[[str], None],
) -> Callable[..., None]:
    """Build the ``register`` callback handed to one plugin's hook.

    An invalid registration is reported through ``on_error`` and skipped, so the
    plugin's other registrations still count.
    """

    def register(
        name: str,
        factory: Callable[..., Any],
        *,
        description: str = "",
        options: Sequence[Option] = (),
        **metadata: Any,
    ) -> None:
        problem, merged = check_registration(kind, name, factory, options, metadata)
        if problem is not None:
            on_error(f"{_SINGULAR[kind]} '{name}': {problem}")
            return
        try:
            registry.add(Entry(kind, name, factory, description, tuple(options), merged, plugin, distribution, version))
        except RegistrationError as exc:
            on_error(str(exc))

    return register
