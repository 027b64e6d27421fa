"""Built-in samplers: ``process`` (psutil RSS) and ``torch`` (PyTorch allocator)."""

from __future__ import annotations

import resource
import sys
from typing import Any

import torch

from prunekit.api import Register, SamplerUnavailable, hookimpl


class ProcessSampler:
    """Resident set size of this process; the exact peak from getrusage at summary."""

    scope = "process"

    def __init__(self, device: torch.device) -> None:
        self._process: Any = None  # a psutil.Process while started

    def start(self) -> None:
        import psutil

        self._process = psutil.Process()

    def sample(self) -> dict[str, float]:
        return {"rss_bytes": self._process.memory_info().rss}

    def stop(self) -> None:
        self._process = None

    def summary(self) -> dict[str, Any]:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"peak_rss_bytes": peak if sys.platform == "darwin" else peak * 1024}


class TorchAllocatorSampler:
    """PyTorch's CUDA/ROCm caching allocator: exact tensor bytes and peaks per phase.

    At every phase change (train, mask_update, eval) the allocator's peak since
    the last change is folded into that phase's peak and the peak is reset.
    """

    scope = "allocator"

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.phase = "setup"
        self.phase_peaks: dict[str, int] = {}
        self.overall_peak = 0

    def start(self) -> None:
        if self.device.type != "cuda" or not torch.cuda.is_available():
            raise SamplerUnavailable(
                f"Sampler 'torch' reads the PyTorch CUDA/ROCm allocator, but this run is on {self.device.type}; "
                "use --device cuda on a GPU machine, or --sampler process."
            )
        torch.cuda.reset_peak_memory_stats(self.device)

    def sample(self) -> dict[str, float]:
        d = self.device
        self.overall_peak = max(self.overall_peak, torch.cuda.max_memory_allocated(d))
        return {
            "allocated_bytes": torch.cuda.memory_allocated(d),
            "reserved_bytes": torch.cuda.memory_reserved(d),
            "max_allocated_bytes": self.overall_peak,  # since start, across phase resets
        }

    def _fold_peak(self) -> None:
        peak = torch.cuda.max_memory_allocated(self.device)
        self.phase_peaks[self.phase] = max(self.phase_peaks.get(self.phase, 0), peak)
        self.overall_peak = max(self.overall_peak, peak)

    def phase_changed(self, phase: str) -> None:
        self._fold_peak()
        torch.cuda.reset_peak_memory_stats(self.device)
        self.phase = phase

    def stop(self) -> None:
        if self.device.type == "cuda":
            self._fold_peak()

    def summary(self) -> dict[str, Any]:
        return {"phase_peak_allocated_bytes": dict(self.phase_peaks), "peak_allocated_bytes": self.overall_peak}


@hookimpl
def register_samplers(register: Register) -> None:
    register("process", ProcessSampler, description="resident memory of this process (psutil)", scope="process")
    register(
        "torch", TorchAllocatorSampler, description="PyTorch CUDA/ROCm allocator bytes and per-phase peaks", scope="allocator"
    )
