"""The ``rocm`` sampler: what the AMD driver (amdsmi) sees of the run's GPU.

Figures (bytes unless the name says otherwise):

- ``device_used_bytes`` / ``device_total_bytes``: VRAM of the whole GPU, every
  process included (what amd-smi shows). From ``amdsmi_get_gpu_memory_usage`` /
  ``_total`` (bytes); where those are unsupported, from
  ``amdsmi_get_gpu_vram_usage`` (whole MiB, converted to bytes).
- ``process_used_bytes``: this process's VRAM from the process list (both
  API shapes: ROCm 6.0-6.1.1 handles + ``amdsmi_get_gpu_process_info``, 6.1.2+
  dicts). Absent whenever amdsmi cannot tell; the summary says why.
- ``gfx_activity_percent``, ``umc_activity_percent``, ``mm_activity_percent``,
  ``power_watts``, ``temperature_c``.

Finding the GPU, releasing amdsmi, the process list and the summary are
:class:`prunekit.api.DeviceSampler`'s; this module holds only the amdsmi calls.
amdsmi is imported only in :meth:`RocmSampler.open_library`: the real package
raises ``KeyError`` at import time when ``libamd_smi.so`` is absent.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, cast

from prunekit.api import DeviceSampler, PciAddress, SamplerUnavailable

MiB = 1 << 20
#: amdsmi_status_t codes the sampler treats specially.
NOT_SUPPORTED, NO_PERM, NOT_INIT, DRIVER_NOT_LOADED = 2, 10, 32, 34
INSTALL_HINT = (
    "install ROCm's amd-smi-lib (it ships libamd_smi.so) and the amdsmi Python package matching your ROCm "
    "(pip install amdsmi==<ROCm version>), or set ROCM_PATH"
)


def _number(value: Any) -> float | None:
    """amdsmi reports unsupported fields as the string "N/A"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


class RocmSampler(DeviceSampler):
    """VRAM, this process's VRAM, activity, power and temperature from amdsmi."""

    name = "rocm"
    library_name = "amdsmi"
    reads = "an AMD GPU through amdsmi"
    cpu_hint = "use --device cuda with a ROCm build of torch on an AMD GPU machine."
    visible_devices = "HIP_VISIBLE_DEVICES"
    check_hint = "check that amd-smi works."
    missing_pid_hint = "in a container it may list host pids"
    no_process_figure = "amdsmi reports no VRAM figure for this process"
    labels = {
        "device_used_bytes": "device-wide: VRAM used by all processes on this GPU (amdsmi)",
        "device_total_bytes": "device-wide: total VRAM (amdsmi)",
        "process_used_bytes": "this process only: its VRAM in amdsmi's process list",
    }

    def __init__(self, device: Any) -> None:
        super().__init__(device)
        self.memory_api = "amdsmi_get_gpu_memory_usage"
        self._total: int | None = None
        self._temp_sensor: Any = None
        self._seen: list[str] = []

    def open_library(self) -> Any:
        smi = _import_amdsmi()
        try:
            smi.amdsmi_init()
        except smi.AmdSmiException as exc:
            raise SamplerUnavailable(_init_message(exc)) from None
        return smi

    def close_library(self, lib: Any) -> None:
        try:
            lib.amdsmi_shut_down()
        except lib.AmdSmiLibraryException as exc:
            if exc.err_code != NOT_INIT:
                raise

    def library_errors(self) -> tuple[type[BaseException], ...]:
        return (self.lib.AmdSmiException,)

    def is_unsupported(self, exc: BaseException) -> bool:
        return isinstance(exc, self.lib.AmdSmiLibraryException) and exc.err_code in (NOT_SUPPORTED, NO_PERM)

    def find_handle(self, address: PciAddress | None, props: Any) -> Any:
        """The handle whose PCI BDF is the torch device's (amdsmi ignores *_VISIBLE_DEVICES)."""
        smi = self.lib
        self._seen = []
        for handle in smi.amdsmi_get_processor_handles():
            bdf = smi.amdsmi_get_gpu_device_bdf(handle)
            self._seen.append(bdf)
            if PciAddress.parse(bdf) == address:
                self.identity["bdf"] = bdf
                return handle
        return None

    def not_found_hint(self) -> str:
        return f"; it sees {', '.join(self._seen) or 'no GPU'}."

    def probe(self) -> None:
        smi, handle = self.lib, self.handle
        try:
            smi.amdsmi_get_gpu_memory_usage(handle, smi.AmdSmiMemoryType.VRAM)
            self._total = int(smi.amdsmi_get_gpu_memory_total(handle, smi.AmdSmiMemoryType.VRAM))
            self.memory_api = "amdsmi_get_gpu_memory_usage (bytes)"
        except smi.AmdSmiLibraryException:
            smi.amdsmi_get_gpu_vram_usage(handle)  # must work, or the sampler is unavailable
            self.memory_api = "amdsmi_get_gpu_vram_usage (MiB resolution)"
        for sensor in (smi.AmdSmiTemperatureType.HOTSPOT, smi.AmdSmiTemperatureType.EDGE):
            try:
                smi.amdsmi_get_temp_metric(handle, sensor, smi.AmdSmiTemperatureMetric.CURRENT)
            except smi.AmdSmiLibraryException as exc:
                if exc.err_code != NOT_SUPPORTED:
                    raise
                continue
            self._temp_sensor = sensor
            return
        self.unsupported["temperature"] = "no hotspot or edge sensor"

    def read(self) -> dict[str, float]:
        smi, handle = self.lib, self.handle
        figures: dict[str, float] = self._memory()
        activity = self.optional("activity", lambda: smi.amdsmi_get_gpu_activity(handle))
        for key in ("gfx_activity", "umc_activity", "mm_activity"):
            value = _number((activity or {}).get(key))
            if value is not None:
                figures[f"{key}_percent"] = value
        power = self.optional("power", lambda: smi.amdsmi_get_power_info(handle))
        for key in ("socket_power", "current_socket_power", "average_socket_power"):
            value = _number((power or {}).get(key))
            if value is not None:
                figures["power_watts"] = value
                break
        if self._temp_sensor is not None:
            temp = self.optional(
                "temperature",
                lambda: smi.amdsmi_get_temp_metric(handle, self._temp_sensor, smi.AmdSmiTemperatureMetric.CURRENT),
            )
            if temp is not None:
                figures["temperature_c"] = temp
        return figures

    def _memory(self) -> dict[str, float]:
        smi, handle = self.lib, self.handle
        if self._total is not None:
            used = smi.amdsmi_get_gpu_memory_usage(handle, smi.AmdSmiMemoryType.VRAM)
            return {"device_used_bytes": int(used), "device_total_bytes": self._total}
        usage = smi.amdsmi_get_gpu_vram_usage(handle)  # MiB
        return {"device_used_bytes": int(usage["vram_used"]) * MiB, "device_total_bytes": int(usage["vram_total"]) * MiB}

    def processes(self) -> list[tuple[int, int | None]]:
        smi, handle = self.lib, self.handle
        infos: list[Any] = []  # amdsmi's process dicts
        for entry in smi.amdsmi_get_gpu_process_list(handle):
            if isinstance(entry, dict):  # ROCm 6.1.2 and later
                self.process_api = "amdsmi_get_gpu_process_list (dicts)"
                infos.append(entry)
            else:  # ROCm 6.0-6.1.1: process handles
                self.process_api = "amdsmi_get_gpu_process_list + amdsmi_get_gpu_process_info"
                infos.append(smi.amdsmi_get_gpu_process_info(handle, entry))
        # amdsmi reports vram_mem as an integer count of bytes (or "N/A")
        return [(info.get("pid"), cast("int | None", _number(info.get("memory_usage", {}).get("vram_mem")))) for info in infos]

    def vendor_summary(self) -> dict[str, Any]:
        return {"temperature_sensor": getattr(self._temp_sensor, "name", None)}


def _import_amdsmi() -> Any:
    """Import amdsmi; its import fails with KeyError (not ImportError) without libamd_smi.so."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # the package prints its own complaint
            import amdsmi
    except ImportError:
        raise SamplerUnavailable(f"Sampler 'rocm' needs the amdsmi Python package: {INSTALL_HINT}.") from None
    except Exception as exc:
        raise SamplerUnavailable(
            f"Sampler 'rocm': amdsmi cannot load libamd_smi.so ({type(exc).__name__}: {exc}); {INSTALL_HINT}."
        ) from None
    return amdsmi


def _init_message(exc: BaseException) -> str:
    code = getattr(exc, "err_code", None)
    if code == DRIVER_NOT_LOADED:
        return "Sampler 'rocm': the amdgpu kernel driver is not loaded; load it (amd-smi must work) or pick another sampler."
    if code == NO_PERM:
        return "Sampler 'rocm': no permission to use amdsmi; run as a user in the 'render' and 'video' groups."
    return f"Sampler 'rocm': amdsmi_init failed ({type(exc).__name__}: {' '.join(str(exc).split())}); check that amd-smi works."
