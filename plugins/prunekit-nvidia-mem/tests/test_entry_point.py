"""The plugin is found through its installed entry point, with distribution and version."""

from __future__ import annotations

import importlib.metadata

import prunekit_nvidia_mem
from prunekit.testing import load_plugins


def test_get_plugins_lists_the_nvidia_sampler_with_provenance():
    plugins = load_plugins()
    info = plugins.infos["nvidia"]
    assert info.errors == []
    assert info.distribution == "prunekit-nvidia-mem"
    assert info.version == importlib.metadata.version("prunekit-nvidia-mem") == prunekit_nvidia_mem.__version__
    assert info.registered["samplers"] == ["nvidia"]
    entry = plugins.registry.get("samplers", "nvidia")
    assert entry.distribution == "prunekit-nvidia-mem" and entry.version == info.version
    assert entry.metadata["scope"] == "device"
    assert entry.factory is prunekit_nvidia_mem.NvidiaSampler
