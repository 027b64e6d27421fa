"""Load plugins (built-in modules and the ``prunekit`` entry-point group)."""

from __future__ import annotations

import importlib
import importlib.metadata
import traceback
from dataclasses import dataclass, field
from typing import Any

import pluggy

from prunekit import __version__
from prunekit.core.plugins import hookspecs
from prunekit.core.plugins.kinds import KINDS
from prunekit.core.plugins.registry import Registry, make_register

ENTRY_POINT_GROUP = "prunekit"

BUILTIN_PLUGINS = (
    "prunekit.builtin.models",
    "prunekit.builtin.datasets",
    "prunekit.builtin.optimizers",
    "prunekit.builtin.pruners",
    "prunekit.builtin.samplers",
)


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin."""

    name: str
    distribution: str
    version: str
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return "; ".join(self.errors) or None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "registered": {k: v for k, v in self.registered.items() if v},
            "errors": list(self.errors),
        }


@dataclass
class Plugins:
    """The plugin manager together with what every plugin registered."""

    manager: pluggy.PluginManager
    registry: Registry
    infos: dict[str, PluginInfo]


_loaded: Plugins | None = None


def _error_line(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]


def build(extra: dict[str, object] | None = None) -> Plugins:
    """Load every plugin and build a fresh registry.

    ``extra`` maps names to already-imported plugin objects (used by tests and
    by embedding applications); they register like any entry-point plugin.
    """
    pm = pluggy.PluginManager("prunekit")
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}

    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        infos[module_name] = PluginInfo(module_name, "prunekit", __version__)

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "unknown"
        version = ep.dist.version if ep.dist else "unknown"
        info = PluginInfo(ep.name, dist, version)
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name) or ep.name in infos:
            first = infos.get(ep.name)
            owner = f" by {first.distribution}" if first else ""
            info.name = f"{ep.name} ({dist})"
            info.errors.append(f"not loaded: a plugin named '{ep.name}' is already loaded{owner}")
            infos[info.name] = info
            continue
        infos[ep.name] = info
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            info.errors.append(f"failed to load: {_error_line(exc)}")

    for name, obj in (extra or {}).items():
        pm.register(obj, name=name)
        infos[name] = PluginInfo(name, getattr(obj, "__distribution__", name), getattr(obj, "__version__", "unknown"))

    while True:  # a misspelled hook implementation disables that plugin only
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or ""
            pm.unregister(exc.plugin)
            infos[name].errors.append(f"invalid hook: {exc}")

    registry = Registry()
    for kind in KINDS:
        caller = getattr(pm.hook, f"register_{kind}")
        for impl in caller.get_hookimpls():
            info = infos[impl.plugin_name]
            info.registered.setdefault(kind, [])
            before = set(registry.entries[kind])
            register = make_register(registry, kind, info.name, info.distribution, info.version, info.errors.append)
            try:
                impl.function(register=register)
            except Exception as exc:  # a broken hook must not take the others down
                info.errors.append(f"register_{kind} failed: {_error_line(exc)}")
            info.registered[kind].extend(sorted(set(registry.entries[kind]) - before))
    return Plugins(pm, registry, infos)


def get_plugins() -> Plugins:
    """The process-wide plugins, loaded once on first use."""
    global _loaded
    if _loaded is None:
        _loaded = build()
    return _loaded


def get_registry() -> Registry:
    return get_plugins().registry


def reset(extra: dict[str, object] | None = None) -> Plugins:
    """Reload plugins (optionally with extra plugin objects) and return them."""
    global _loaded
    _loaded = build(extra)
    return _loaded
