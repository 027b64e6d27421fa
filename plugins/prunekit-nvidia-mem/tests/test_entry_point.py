"""The plugin is found through its installed entry point, with distribution and version."""

from __future__ import annotations

import prunekit_nvidia_mem
from prunekit.testing.provenance import assert_registered_by_distribution


def test_get_plugins_lists_the_nvidia_sampler_with_provenance():
    assert_registered_by_distribution(
        "nvidia",
        "prunekit-nvidia-mem",
        "samplers",
        "nvidia",
        prunekit_nvidia_mem.NvidiaSampler,
        prunekit_nvidia_mem.__version__,
        scope="device",
    )
