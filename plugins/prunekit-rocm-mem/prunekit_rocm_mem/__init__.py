"""prunekit plugin: sampler ``rocm``, GPU memory as the AMD driver (amdsmi) sees it."""

from __future__ import annotations

from prunekit.api import Register, hookimpl
from prunekit_rocm_mem.sampler import RocmSampler

__version__ = "0.1.0"
__all__ = ["RocmSampler"]


@hookimpl
def register_samplers(register: Register) -> None:
    register(
        "rocm",
        RocmSampler,
        description="AMD GPU via amdsmi: VRAM used/total bytes, this process's VRAM, activity, power, temperature",
        scope="device",
    )
