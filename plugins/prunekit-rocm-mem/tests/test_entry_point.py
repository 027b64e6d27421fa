"""The plugin is found through its installed entry point, with distribution and version."""

from __future__ import annotations

import importlib.metadata

import prunekit_rocm_mem
from prunekit.testing import load_plugins


def test_get_plugins_lists_the_rocm_sampler_with_provenance():
    plugins = load_plugins()
    info = plugins.infos["rocm"]
    assert info.errors == []
    assert info.distribution == "prunekit-rocm-mem"
    assert info.version == importlib.metadata.version("prunekit-rocm-mem") == prunekit_rocm_mem.__version__
    assert info.registered["samplers"] == ["rocm"]
    entry = plugins.registry.get("samplers", "rocm")
    assert entry.distribution == "prunekit-rocm-mem" and entry.version == info.version
    assert entry.metadata["scope"] == "device"
    assert entry.factory is prunekit_rocm_mem.RocmSampler
