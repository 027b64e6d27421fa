"""The plugin is found through its installed entry point, with distribution and version."""

from __future__ import annotations

import prunekit_rocm_mem
from prunekit.testing.provenance import assert_registered_by_distribution


def test_get_plugins_lists_the_rocm_sampler_with_provenance():
    assert_registered_by_distribution(
        "rocm",
        "prunekit-rocm-mem",
        "samplers",
        "rocm",
        prunekit_rocm_mem.RocmSampler,
        prunekit_rocm_mem.__version__,
        scope="device",
    )
