"""What a run records about where it ran, for reproducibility."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import torch


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def describe_environment(device: torch.device, plugins: dict[str, str]) -> dict:
    """Python, library versions, device and plugin distributions with versions."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "prunekit": _version("prunekit"),
        "plugins": plugins,
        "device": str(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "argv": sys.argv,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            device_name=props.name,
            device_memory_bytes=props.total_memory,
            cuda=torch.version.cuda,
            hip=torch.version.hip,
        )
    return info
