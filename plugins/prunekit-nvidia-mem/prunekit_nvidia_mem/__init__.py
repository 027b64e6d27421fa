"""prunekit plugin: sampler ``nvidia``, GPU memory as the NVIDIA driver (NVML) sees it."""

from __future__ import annotations

from prunekit.api import Register, hookimpl
from prunekit_nvidia_mem.sampler import NvidiaSampler

__version__ = "0.1.0"
__all__ = ["NvidiaSampler"]


@hookimpl
def register_samplers(register: Register) -> None:
    register(
        "nvidia",
        NvidiaSampler,
        description="NVIDIA GPU via NVML: device used/total bytes, this process's bytes, utilisation, power, temperature",
        scope="device",
    )
