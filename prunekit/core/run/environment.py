"""What a run records about where it ran, for reproducibility."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def describe_environment(device: torch.device, plugins: dict[str, str]) -> dict[str, Any]:
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
    if os.environ.get("SLURM_JOB_ID"):
        info["slurm"] = slurm_environment()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            device_name=props.name,
            device_memory_bytes=props.total_memory,
            cuda=torch.version.cuda,
            hip=torch.version.hip,
        )
    return info


def slurm_environment() -> dict[str, Any]:
    """The Slurm job this process runs in: ``job_id`` as squeue names it (``123_4`` for array element 4)."""
    env = os.environ
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    return {
        "job_id": f"{array}_{task}" if array and task else env.get("SLURM_JOB_ID"),
        "raw_job_id": env.get("SLURM_JOB_ID"),
        "restart_count": int(env.get("SLURM_RESTART_COUNT", "0")),
        "partition": env.get("SLURM_JOB_PARTITION"),
        "node": env.get("SLURMD_NODENAME"),
        "cpus_per_task": env.get("SLURM_CPUS_PER_TASK"),
    }
