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

Finding the GPU, releasing NVML, the process list and the summary are
:class:`prunekit.api.DeviceSampler`'s; this module holds only the NVML calls.
pynvml is imported only in :meth:`NvidiaSampler.open_library`.
"""

from __future__ import annotations

from typing import Any

from prunekit.api import DeviceSampler, PciAddress, SamplerUnavailable

INSTALL_HINT = "pip install nvidia-ml-py"


def nvml_uuid(props: Any) -> str | None:
    """NVML's UUID ("GPU-...") from torch's ``uuid`` property, which has no prefix."""
    uuid = getattr(props, "uuid", None)
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


class NvidiaSampler(DeviceSampler):
    """Device memory, this process's memory, utilisation, power and temperature from NVML."""

    name = "nvidia"
    library_name = "NVML"
    reads = "an NVIDIA GPU through NVML"
    cpu_hint = "use --device cuda on an NVIDIA GPU machine."
    check_hint = "check nvidia-smi."
    bus_id_digits = 8
    missing_pid_hint = "in a container NVML lists host pids; under MIG it needs MIG device handles"
    no_process_figure = "NVML does not account per-process memory here (usedGpuMemory is N/A)"
    labels = {
        "device_used_bytes": "device-wide: all processes on this GPU, CUDA contexts included (NVML)",
        "device_total_bytes": "device-wide: total GPU memory (NVML)",
        "device_reserved_bytes": "device-wide: memory reserved by the driver (NVML v2 only)",
        "process_used_bytes": "this process only, as NVML accounts it (CUDA context included)",
    }

    def __init__(self, device: Any) -> None:
        super().__init__(device)
        self.memory_api = "nvmlDeviceGetMemoryInfo v2"
        self.process_api = "nvmlDeviceGetComputeRunningProcesses"

    def open_library(self) -> Any:
        try:
            import pynvml
        except ImportError:
            raise SamplerUnavailable(f"Sampler 'nvidia' needs the NVML bindings: {INSTALL_HINT}.") from None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise SamplerUnavailable(_init_message(exc)) from None
        return pynvml

    def close_library(self, lib: Any) -> None:
        try:
            lib.nvmlShutdown()
        except lib.NVMLError_Uninitialized:
            pass  # already shut down elsewhere: nothing left to release

    def library_errors(self) -> tuple[type[BaseException], ...]:
        return (self.lib.NVMLError,)

    def is_unsupported(self, exc: BaseException) -> bool:
        nvml = self.lib
        return isinstance(exc, (nvml.NVMLError_NotSupported, nvml.NVMLError_NoPermission, nvml.NVMLError_FunctionNotFound))

    def find_handle(self, address: PciAddress | None, props: Any) -> Any:
        """By PCI bus id, then by UUID (never by index)."""
        nvml, uuid = self.lib, nvml_uuid(props)
        self.identity["uuid"] = uuid
        for matched_by, key, lookup in (
            ("pci_bus_id", address.bus_id(8) if address else None, nvml.nvmlDeviceGetHandleByPciBusId),
            ("uuid", uuid, nvml.nvmlDeviceGetHandleByUUID),
        ):
            if key is None:
                continue
            try:
                handle = lookup(key)
            except (nvml.NVMLError_NotFound, nvml.NVMLError_InvalidArgument):
                continue
            self.identity["matched_by"] = matched_by
            return handle
        return None

    def not_found_hint(self) -> str:
        return f" or UUID {self.identity.get('uuid')}; is the driver's NVML from the same machine or container as CUDA?"

    def probe(self) -> None:
        self._memory()  # settles the memory API version

    def read(self) -> dict[str, float]:
        nvml, handle = self.lib, self.handle
        figures: dict[str, float] = dict(self._memory())
        util = self.optional("utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        if util is not None:
            figures["gpu_util_percent"] = util.gpu
            figures["memory_util_percent"] = util.memory
        power = self.optional("power", lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        if power is not None:
            figures["power_watts"] = power / 1000.0  # NVML reports milliwatts
        temp = self.optional("temperature", lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        if temp is not None:
            figures["temperature_c"] = temp
        return figures

    def _memory(self) -> dict[str, int]:
        nvml, handle = self.lib, self.handle
        if self.memory_api.endswith("v2"):
            try:
                info = nvml.nvmlDeviceGetMemoryInfo(handle, version=nvml.nvmlMemory_v2)
                return {
                    "device_used_bytes": int(info.used),
                    "device_total_bytes": int(info.total),
                    "device_reserved_bytes": int(info.reserved),
                }
            except (nvml.NVMLError_FunctionNotFound, nvml.NVMLError_ArgumentVersionMismatch):
                self.memory_api = "nvmlDeviceGetMemoryInfo v1"  # older driver: v1 from now on
        info = nvml.nvmlDeviceGetMemoryInfo(handle)
        return {"device_used_bytes": int(info.used), "device_total_bytes": int(info.total)}

    def processes(self) -> list[tuple[int, int | None]]:
        nvml, handle = self.lib, self.handle
        if self.process_api == "nvmlDeviceGetComputeRunningProcesses":
            try:
                return [(p.pid, p.usedGpuMemory) for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)]
            except nvml.NVMLLibraryMismatchError:  # not an NVMLError: older driver, use _v2 from now on
                self.process_api = "nvmlDeviceGetComputeRunningProcesses_v2"
        return [(p.pid, p.usedGpuMemory) for p in nvml.nvmlDeviceGetComputeRunningProcesses_v2(handle)]


def _init_message(exc: Exception) -> str:
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
