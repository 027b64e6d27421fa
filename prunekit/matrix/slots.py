"""Where the matrix's children run: one environment per concurrent child (CPU threads, or one GPU each).

CPU: each child gets ``max(1, cores // jobs)`` torch threads. CUDA (runs on
``device: auto`` or ``cuda`` and a GPU visible): one child per visible device,
pinned with ``CUDA_VISIBLE_DEVICES``; ``jobs`` is capped at the device count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prunekit.core.config.settings import RunConfig
from prunekit.matrix.worker import THREADS_ENV


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _wants_cuda(configs: list[RunConfig]) -> bool:
    return bool(configs) and all(c.device in ("auto", "cuda") for c in configs)


def _visible_devices() -> list[str]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return []
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


@dataclass
class Slots:
    """Environment of each concurrent child and a description of the split."""

    envs: list[dict[str, str]]
    description: str


def make_slots(jobs: int, configs: list[RunConfig], threads: int | None = None) -> Slots:
    """One environment per concurrent child; ``threads`` overrides the fair CPU split."""
    cores = available_cores()
    devices = _visible_devices() if _wants_cuda(configs) else []
    if devices:
        n = min(jobs, len(devices))
        threads = threads or max(1, cores // n)
        envs = [_thread_env(threads) | {"CUDA_VISIBLE_DEVICES": devices[i]} for i in range(n)]
        capped = f" (--jobs {jobs} capped at {len(devices)} visible GPUs)" if jobs > n else ""
        return Slots(envs, f"{n} job(s), one per GPU ({', '.join(devices[:n])}), {threads} CPU thread(s) each{capped}")
    threads = threads or max(1, cores // jobs)
    return Slots(
        [_thread_env(threads) for _ in range(jobs)], f"{jobs} job(s) on CPU, {threads} torch thread(s) each ({cores} cores)"
    )


def _thread_env(threads: int) -> dict[str, str]:
    n = str(threads)
    return {THREADS_ENV: n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
