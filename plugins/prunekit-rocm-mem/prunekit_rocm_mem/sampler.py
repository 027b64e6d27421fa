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

amdsmi is imported only in :meth:`RocmSampler.start`: the real package raises
``KeyError`` at import time when ``libamd_smi.so`` is absent.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import torch

from prunekit.api import SamplerUnavailable

MiB = 1 << 20
#: amdsmi_status_t codes the sampler treats specially.
NOT_SUPPORTED, NO_PERM, NOT_INIT, DRIVER_NOT_LOADED = 2, 10, 32, 34
INSTALL_HINT = (
    "install ROCm's amd-smi-lib (it ships libamd_smi.so) and the amdsmi Python package matching your ROCm "
    "(pip install amdsmi==<ROCm version>), or set ROCM_PATH"
)

LABELS = {
    "device_used_bytes": "device-wide: VRAM used by all processes on this GPU (amdsmi)",
    "device_total_bytes": "device-wide: total VRAM (amdsmi)",
    "process_used_bytes": "this process only: its VRAM in amdsmi's process list",
}


def device_properties(device: torch.device) -> Any:
    """torch's properties of ``device`` (PCI ids); the one torch lookup, patched in tests."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_properties(index)


def parse_bdf(bdf: str) -> tuple[int, int, int]:
    """``"0000:03:00.0"`` (or ``"03:00.0"``) -> (domain, bus, device)."""
    parts = str(bdf).strip().split(":")
    if len(parts) == 2:
        parts = ["0", *parts]
    domain, bus, rest = parts
    return int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _number(value: Any) -> float | None:
    """amdsmi reports unsupported fields as the string "N/A"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


class RocmSampler:
    """VRAM, this process's VRAM, activity, power and temperature from amdsmi."""

    scope = "device"

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self._smi: Any = None
        self._handle: Any = None
        self._memory_api = "amdsmi_get_gpu_memory_usage"
        self._total: int | None = None
        self._temp_sensor: Any = None
        self._process_api = "not sampled yet"
        self._process_note = "not sampled yet"
        self._process_samples = 0
        self._unsupported: dict[str, str] = {}
        self._identity: dict[str, Any] = {}

    # -- start/stop ---------------------------------------------------------
    def start(self) -> None:
        if self.device.type != "cuda":
            raise SamplerUnavailable(
                f"Sampler 'rocm' reads an AMD GPU through amdsmi, but this run is on {self.device.type}; "
                "use --device cuda with a ROCm build of torch on an AMD GPU machine."
            )
        smi = _import_amdsmi()
        try:
            smi.amdsmi_init()
        except smi.AmdSmiException as exc:
            raise SamplerUnavailable(_init_message(exc)) from None
        self._smi = smi
        try:
            self._handle = self._find_handle()
            self._probe_memory()
            self._probe_temperature()
            self._process_used()
        except smi.AmdSmiException as exc:
            self._release()
            raise SamplerUnavailable(
                f"Sampler 'rocm': amdsmi cannot read {self.device} ({_one_line(exc)}); check that amd-smi works."
            ) from None
        except BaseException:
            self._release()
            raise

    def _find_handle(self) -> Any:
        """The amdsmi handle whose PCI BDF is the torch device's (amdsmi ignores *_VISIBLE_DEVICES)."""
        smi = self._smi
        try:
            props = device_properties(self.device)
            wanted = (int(props.pci_domain_id), int(props.pci_bus_id), int(props.pci_device_id))
        except Exception as exc:
            raise SamplerUnavailable(
                f"Sampler 'rocm': torch cannot see {self.device} ({_one_line(exc)}); "
                "check HIP_VISIBLE_DEVICES and the ROCm build of torch."
            ) from None
        seen = []
        for handle in smi.amdsmi_get_processor_handles():
            bdf = smi.amdsmi_get_gpu_device_bdf(handle)
            seen.append(bdf)
            if parse_bdf(bdf) == wanted:
                self._identity = {
                    "torch_device": str(self.device),
                    "bdf": bdf,
                    "name": str(getattr(props, "name", "")),
                }
                return handle
        wanted_text = "{:04x}:{:02x}:{:02x}".format(*wanted)
        raise SamplerUnavailable(
            f"Sampler 'rocm': amdsmi has no GPU at PCI {wanted_text} (torch {self.device}); "
            f"it sees {', '.join(seen) or 'no GPU'}."
        )

    def _probe_memory(self) -> None:
        smi, handle = self._smi, self._handle
        try:
            smi.amdsmi_get_gpu_memory_usage(handle, smi.AmdSmiMemoryType.VRAM)
            self._total = int(smi.amdsmi_get_gpu_memory_total(handle, smi.AmdSmiMemoryType.VRAM))
            self._memory_api = "amdsmi_get_gpu_memory_usage (bytes)"
        except smi.AmdSmiLibraryException:
            smi.amdsmi_get_gpu_vram_usage(handle)  # must work, or the sampler is unavailable
            self._memory_api = "amdsmi_get_gpu_vram_usage (MiB resolution)"

    def _probe_temperature(self) -> None:
        smi = self._smi
        for sensor in (smi.AmdSmiTemperatureType.HOTSPOT, smi.AmdSmiTemperatureType.EDGE):
            try:
                smi.amdsmi_get_temp_metric(self._handle, sensor, smi.AmdSmiTemperatureMetric.CURRENT)
            except smi.AmdSmiLibraryException as exc:
                if exc.err_code != NOT_SUPPORTED:
                    raise
                continue
            self._temp_sensor = sensor
            return
        self._unsupported["temperature"] = "no hotspot or edge sensor"

    def stop(self) -> None:
        self._release()

    def _release(self) -> None:
        smi, self._smi, self._handle = self._smi, None, None
        if smi is not None:
            try:
                smi.amdsmi_shut_down()
            except smi.AmdSmiLibraryException as exc:
                if exc.err_code != NOT_INIT:
                    raise

    # -- sampling --------------------------------------------------------------
    def sample(self) -> dict[str, float]:
        if self._handle is None:
            raise RuntimeError("sampler 'rocm' is not started")
        smi, handle = self._smi, self._handle
        figures: dict[str, float] = self._memory()
        process = self._process_used()
        if process is not None:
            figures["process_used_bytes"] = process
        activity = self._optional("activity", lambda: smi.amdsmi_get_gpu_activity(handle))
        for key in ("gfx_activity", "umc_activity", "mm_activity"):
            value = _number((activity or {}).get(key))
            if value is not None:
                figures[f"{key}_percent"] = value
        power = self._optional("power", lambda: smi.amdsmi_get_power_info(handle))
        for key in ("socket_power", "current_socket_power", "average_socket_power"):
            value = _number((power or {}).get(key))
            if value is not None:
                figures["power_watts"] = value
                break
        if self._temp_sensor is not None:
            temp = self._optional(
                "temperature",
                lambda: smi.amdsmi_get_temp_metric(handle, self._temp_sensor, smi.AmdSmiTemperatureMetric.CURRENT),
            )
            if temp is not None:
                figures["temperature_c"] = temp
        return figures

    def _memory(self) -> dict[str, float]:
        smi, handle = self._smi, self._handle
        if self._total is not None:
            used = smi.amdsmi_get_gpu_memory_usage(handle, smi.AmdSmiMemoryType.VRAM)
            return {"device_used_bytes": int(used), "device_total_bytes": self._total}
        usage = smi.amdsmi_get_gpu_vram_usage(handle)  # MiB
        return {"device_used_bytes": int(usage["vram_used"]) * MiB, "device_total_bytes": int(usage["vram_total"]) * MiB}

    def _process_used(self) -> int | None:
        """This process's VRAM, or None (with the reason kept for the summary)."""
        smi, handle = self._smi, self._handle
        try:
            entries = smi.amdsmi_get_gpu_process_list(handle)
            infos = []
            for entry in entries:
                if isinstance(entry, dict):  # ROCm 6.1.2 and later
                    self._process_api = "amdsmi_get_gpu_process_list (dicts)"
                    infos.append(entry)
                else:  # ROCm 6.0-6.1.1: process handles
                    self._process_api = "amdsmi_get_gpu_process_list + amdsmi_get_gpu_process_info"
                    infos.append(smi.amdsmi_get_gpu_process_info(handle, entry))
        except smi.AmdSmiLibraryException as exc:
            if exc.err_code not in (NOT_SUPPORTED, NO_PERM):
                raise
            self._process_note = f"unavailable: amdsmi cannot list processes on this GPU ({_one_line(exc)})"
            return None
        pid = os.getpid()
        mine = [info for info in infos if info.get("pid") == pid]
        if not mine:
            self._process_note = f"unavailable: pid {pid} is not in amdsmi's process list (in a container it may list host pids)"
            return None
        vram = [_number(info.get("memory_usage", {}).get("vram_mem")) for info in mine]
        if any(v is None for v in vram):
            self._process_note = "unavailable: amdsmi reports no VRAM figure for this process"
            return None
        self._process_samples += 1
        self._process_note = "reported"
        return int(sum(vram))

    def _optional(self, what: str, read: Any) -> Any:
        """A figure the GPU may not support: NOT_SUPPORTED disables it (reported in the summary)."""
        if what in self._unsupported:
            return None
        try:
            return read()
        except self._smi.AmdSmiLibraryException as exc:
            if exc.err_code != NOT_SUPPORTED:
                raise
            self._unsupported[what] = _one_line(exc)
            return None

    # -- summary -----------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "device": dict(self._identity),
            "memory_api": self._memory_api,
            "process_api": self._process_api,
            "process_memory": self._process_note,
            "process_samples": self._process_samples,
            "temperature_sensor": getattr(self._temp_sensor, "name", None),
            "unsupported": dict(self._unsupported),
            "labels": dict(LABELS),
        }


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
    return f"Sampler 'rocm': amdsmi_init failed ({_one_line(exc)}); check that amd-smi works."
