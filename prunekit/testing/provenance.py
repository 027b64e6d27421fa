"""Checks that an installed plugin is found through its entry point, with its provenance."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from prunekit.core.plugins.loading import build as load_plugins


def assert_registered_by_distribution(
    plugin: str, distribution: str, kind: str, name: str, factory: Any, version: str, **metadata: Any
) -> None:
    """Plugin ``plugin`` loads without errors from the installed ``distribution`` (at ``version``,
    the installed one) and registers only ``name`` of ``kind`` with ``factory`` and ``metadata``."""
    plugins = load_plugins()
    info = plugins.infos[plugin]
    assert info.errors == []
    assert info.distribution == distribution
    assert info.version == importlib.metadata.version(distribution) == version
    assert info.registered[kind] == [name]
    entry = plugins.registry.get(kind, name)
    assert entry.distribution == distribution and entry.version == info.version
    assert {key: entry.metadata[key] for key in metadata} == metadata
    assert entry.factory is factory
