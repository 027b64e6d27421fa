"""The ``nvidia`` sampler: what the NVIDIA driver (NVML) sees of the run's GPU.

Figures (bytes unless the name says otherwise):

- ``device_used_bytes`` / ``device_total_bytes`` / ``device_reserved_bytes``:
  the whole GPU, every process and the CUDA contexts included (what
  nvidia-smi shows). With the v1 memory API (older drivers) ``used`` includes
  the driver-reserved memory and ``device_reserved_bytes`` is absent.
- ``process_used_bytes``: this process's GPU memory as NVML accounts it
  (its CUDA context included). Absent whenever NVML cannot tell; the
  summary's ``process_memory`` says why. Never reported as 0 for "unknown".
- ``gpu_util_percent``, ``memory_util_percent``, ``power_watts``, ``temperature_c``.

pynvml is imported only in :meth:`NvidiaSampler.start`.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from prunekit.api import SamplerUnavailable

INSTALL_HINT = "pip install nvidia-ml-py"

LABELS = {
    "device_used_bytes": "device-wide: all processes on this GPU, CUDA contexts included (NVML)",
    "device_total_bytes": "device-wide: total GPU memory (NVML)",
    "device_reserved_bytes": "device-wide: memory reserved by the driver (NVML v2 only)",
    "process_used_bytes": "this process only, as NVML accounts it (CUDA context included)",
}


def device_properties(device: torch.device) -> Any:
    """torch's properties of ``device`` (PCI ids, UUID); the one torch lookup, patched in tests."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_properties(index)


def pci_bus_id(props: Any) -> str | None:
    """NVML's bus id string ("00000000:01:00.0") from torch device properties."""
    try:
        domain, bus, dev = props.pci_domain_id, props.pci_bus_id, props.pci_device_id
    except AttributeError:
        return None
    return f"{int(domain):08X}:{int(bus):02X}:{int(dev):02X}.0"


def nvml_uuid(props: Any) -> str | None:
    """NVML's UUID ("GPU-...") from torch's ``uuid`` property, which has no prefix."""
    uuid = getattr(props, "uuid", None)
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


class NvidiaSampler:
    """Device memory, this process's memory, utilisation, power and temperature from NVML."""

    scope = "device"

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self._nvml: Any = None
        self._handle: Any = None
        self._memory_version = 2
        self._process_call = "nvmlDeviceGetComputeRunningProcesses"
        self._process_note = "not sampled yet"
        self._process_samples = 0
        self._unsupported: dict[str, str] = {}
        self._identity: dict[str, Any] = {}

    # -- start/stop ---------------------------------------------------------
    def start(self) -> None:
        if self.device.type != "cuda":
            raise SamplerUnavailable(
                f"Sampler 'nvidia' reads an NVIDIA GPU through NVML, but this run is on {self.device.type}; "
                "use --device cuda on an NVIDIA GPU machine."
            )
        try:
            import pynvml
        except ImportError:
            raise SamplerUnavailable(f"Sampler 'nvidia' needs the NVML bindings: {INSTALL_HINT}.") from None
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self._nvml = None
            raise SamplerUnavailable(_init_message(pynvml, exc)) from None
        try:
            self._handle = self._find_handle()
            self._memory()  # probes v2 and settles the memory API version
            self._process_used()
        except pynvml.NVMLError as exc:
            self._release()
            raise SamplerUnavailable(
                f"Sampler 'nvidia': NVML cannot read {self.device} ({type(exc).__name__}: {exc}); check nvidia-smi."
            ) from None
        except BaseException:
            self._release()
            raise

    def _find_handle(self) -> Any:
        """The NVML handle of the torch device, by PCI bus id, then by UUID (never by index)."""
        nvml = self._nvml
        try:
            props = device_properties(self.device)
        except Exception as exc:
            raise SamplerUnavailable(
                f"Sampler 'nvidia': torch cannot see {self.device} ({type(exc).__name__}: {exc}); "
                "check CUDA_VISIBLE_DEVICES and the CUDA build of torch."
            ) from None
        bus_id, uuid = pci_bus_id(props), nvml_uuid(props)
        handle = None
        if bus_id is not None:
            try:
                handle = nvml.nvmlDeviceGetHandleByPciBusId(bus_id)
                self._identity["matched_by"] = "pci_bus_id"
            except (nvml.NVMLError_NotFound, nvml.NVMLError_InvalidArgument):
                handle = None
        if handle is None and uuid is not None:
            try:
                handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
                self._identity["matched_by"] = "uuid"
            except (nvml.NVMLError_NotFound, nvml.NVMLError_InvalidArgument):
                handle = None
        if handle is None:
            raise SamplerUnavailable(
                f"Sampler 'nvidia': NVML has no GPU with PCI bus id {bus_id} or UUID {uuid} "
                f"(torch {self.device}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                "is the driver's NVML from the same machine or container as CUDA?"
            )
        self._identity.update(
            {
                "torch_device": str(self.device),
                "pci_bus_id": bus_id,
                "uuid": uuid,
                "name": str(getattr(props, "name", "")),
            }
        )
        return handle

    def stop(self) -> None:
        self._release()

    def _release(self) -> None:
        nvml, self._nvml, self._handle = self._nvml, None, None
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError_Uninitialized:
                pass  # already shut down elsewhere: nothing left to release

    # -- sampling ------------------------------------------------------------
    def sample(self) -> dict[str, float]:
        if self._handle is None:
            raise RuntimeError("sampler 'nvidia' is not started")
        figures: dict[str, float] = dict(self._memory())
        process = self._process_used()
        if process is not None:
            figures["process_used_bytes"] = process
        nvml, handle = self._nvml, self._handle
        util = self._optional("utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        if util is not None:
            figures["gpu_util_percent"] = util.gpu
            figures["memory_util_percent"] = util.memory
        power = self._optional("power", lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        if power is not None:
            figures["power_watts"] = power / 1000.0  # NVML reports milliwatts
        temp = self._optional("temperature", lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        if temp is not None:
            figures["temperature_c"] = temp
        return figures

    def _memory(self) -> dict[str, int]:
        nvml, handle = self._nvml, self._handle
        if self._memory_version == 2:
            try:
                info = nvml.nvmlDeviceGetMemoryInfo(handle, version=nvml.nvmlMemory_v2)
                return {
                    "device_used_bytes": int(info.used),
                    "device_total_bytes": int(info.total),
                    "device_reserved_bytes": int(info.reserved),
                }
            except (nvml.NVMLError_FunctionNotFound, nvml.NVMLError_ArgumentVersionMismatch):
                self._memory_version = 1  # older driver: v1 from now on
        info = nvml.nvmlDeviceGetMemoryInfo(handle)
        return {"device_used_bytes": int(info.used), "device_total_bytes": int(info.total)}

    def _process_used(self) -> int | None:
        """This process's used GPU memory, or None (with the reason kept for the summary)."""
        nvml, handle = self._nvml, self._handle
        try:
            if self._process_call == "nvmlDeviceGetComputeRunningProcesses":
                try:
                    processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                except nvml.NVMLLibraryMismatchError:  # not an NVMLError: older driver, use _v2 from now on
                    self._process_call = "nvmlDeviceGetComputeRunningProcesses_v2"
            if self._process_call == "nvmlDeviceGetComputeRunningProcesses_v2":
                processes = nvml.nvmlDeviceGetComputeRunningProcesses_v2(handle)
        except (nvml.NVMLError_NotSupported, nvml.NVMLError_NoPermission, nvml.NVMLError_FunctionNotFound) as exc:
            self._process_note = f"unavailable: NVML cannot list processes on this GPU ({type(exc).__name__}: {exc})"
            return None
        pid = os.getpid()
        mine = [p for p in processes if p.pid == pid]
        if not mine:
            self._process_note = (
                f"unavailable: pid {pid} is not in NVML's process list "
                "(in a container NVML lists host pids; under MIG it needs MIG device handles)"
            )
            return None
        used = [p.usedGpuMemory for p in mine]
        if any(u is None for u in used):
            self._process_note = "unavailable: NVML does not account per-process memory here (usedGpuMemory is N/A)"
            return None
        self._process_samples += 1
        self._process_note = "reported"
        return int(sum(used))

    def _optional(self, what: str, read: Any) -> Any:
        """A figure the GPU may not support: NotSupported disables it (reported in the summary)."""
        if what in self._unsupported:
            return None
        try:
            return read()
        except self._nvml.NVMLError_NotSupported as exc:
            self._unsupported[what] = str(exc)
            return None

    # -- summary ---------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "device": dict(self._identity),
            "memory_api": f"nvmlDeviceGetMemoryInfo v{self._memory_version}",
            "process_api": self._process_call,
            "process_memory": self._process_note,
            "process_samples": self._process_samples,
            "unsupported": dict(self._unsupported),
            "labels": dict(LABELS),
        }


def _init_message(nvml: Any, exc: Exception) -> str:
    name = type(exc).__name__
    if name == "NVMLError_LibraryNotFound":
        return (
            "Sampler 'nvidia': the NVML library (libnvidia-ml.so.1) was not found; "
            "install the NVIDIA driver (it ships NVML) or run where nvidia-smi works."
        )
    if name == "NVMLError_DriverNotLoaded":
        return "Sampler 'nvidia': the NVIDIA kernel driver is not loaded; load it (nvidia-smi must work) or pick another sampler."
    if name == "NVMLError_NoPermission":
        return "Sampler 'nvidia': no permission to use NVML; run as a user allowed to access /dev/nvidia*."
    return f"Sampler 'nvidia': nvmlInit failed ({name}: {exc}); check that nvidia-smi works."
