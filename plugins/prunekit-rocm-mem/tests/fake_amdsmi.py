"""A fake ``amdsmi`` module for testing ROCm samplers without an AMD GPU.

It mimics the amdsmi Python package (7.0.2, and ROCm 6.0-6.1.1 for the
process API) where samplers touch it: function and parameter names, the
``IntEnum`` types and their values, the exception classes and hierarchy
(``AmdSmiLibraryException(err_code)`` with ``.err_code``; type checks on
handles and enums raise ``AmdSmiParameterException``), dict results with the
real keys and units (``amdsmi_get_gpu_vram_usage``: MiB; memory usage/total
and per-process memory: bytes; activity %; power W; temperature deg C;
``"N/A"`` for unsupported activity/power fields), and both process-list shapes:

- ``api="6.1.2"`` (6.1.2 and later, default): ``amdsmi_get_gpu_process_list(h)``
  returns dicts ``{name, pid, mem, engine_usage, memory_usage, cu_occupancy}``;
- ``api="6.0"`` (6.0-6.1.1): it returns process handles (``ctypes.c_uint32``)
  and ``amdsmi_get_gpu_process_info(h, p)`` returns the dict.

``library_missing()`` simulates the real package's failure at import time
(``KeyError: 'libamd_smi.so'``) when the shared library is absent.

Usage::

    smi = FakeAmdSmi([FakeAmdGpu(bdf="0000:03:00.0")])
    monkeypatch.setitem(sys.modules, "amdsmi", smi.module)
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from types import SimpleNamespace
from typing import Any

MiB = 1 << 20
GiB = 1 << 30

#: amdsmi_status_t values used by the fake (as in amdsmi_wrapper).
STATUS = {
    "AMDSMI_STATUS_SUCCESS": 0,
    "AMDSMI_STATUS_INVAL": 1,
    "AMDSMI_STATUS_NOT_SUPPORTED": 2,
    "AMDSMI_STATUS_FAIL_LOAD_MODULE": 4,
    "AMDSMI_STATUS_TIMEOUT": 8,
    "AMDSMI_STATUS_RETRY": 9,
    "AMDSMI_STATUS_NO_PERM": 10,
    "AMDSMI_STATUS_INIT_ERROR": 18,
    "AMDSMI_STATUS_NOT_FOUND": 31,
    "AMDSMI_STATUS_NOT_INIT": 32,
    "AMDSMI_STATUS_DRIVER_NOT_LOADED": 34,
    "AMDSMI_STATUS_NO_DATA": 40,
    "AMDSMI_STATUS_UNKNOWN_ERROR": 4294967295,
}
_ERR_INFO = {
    1: "AMDSMI_STATUS_INVAL - Invalid parameters",
    2: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    4: "AMDSMI_STATUS_FAIL_LOAD_MODULE - Fail to load lib",
    8: "AMDSMI_STATUS_TIMEOUT - Timeout in API call",
    9: "AMDSMI_STATUS_RETRY - Retry operation",
    10: "AMDSMI_STATUS_NO_PERM - Permission Denied",
    18: "AMDSMI_STATUS_INIT_ERROR - Initialization error",
    31: "AMDSMI_STATUS_NOT_FOUND - Device Not found",
    32: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    34: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
    40: "AMDSMI_STATUS_NO_DATA - No data was found for given input",
}
_UNKNOWN = "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred"


# -- enums, with the member values of amdsmi 7.0.2 ------------------------
class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 4294967295
    INIT_AMD_CPUS = 1
    INIT_AMD_GPUS = 2
    INIT_AMD_APUS = 3
    INIT_NON_AMD_CPUS = 4
    INIT_NON_AMD_GPUS = 8


class AmdSmiMemoryType(IntEnum):
    VRAM = 0
    VIS_VRAM = 1
    GTT = 2


class AmdSmiTemperatureType(IntEnum):
    EDGE = 0
    HOTSPOT = 1
    JUNCTION = 1
    VRAM = 2
    HBM_0 = 3
    HBM_1 = 4
    HBM_2 = 5
    HBM_3 = 6
    PLX = 7


class AmdSmiTemperatureMetric(IntEnum):
    CURRENT = 0
    MAX = 1
    MIN = 2
    MAX_HYST = 3
    MIN_HYST = 4
    CRITICAL = 5
    CRITICAL_HYST = 6
    EMERGENCY = 7
    EMERGENCY_HYST = 8
    CRIT_MIN = 9
    CRIT_MIN_HYST = 10
    OFFSET = 11
    LOWEST = 12
    HIGHEST = 13


# -- exceptions, same hierarchy and constructors as amdsmi_exception -------
class AmdSmiException(Exception):
    """Base smi exception class"""


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code):
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        self.set_err_info()

    def __str__(self):
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_info(self, detailed=True):
        return self.err_info if detailed else str(self.err_info).split(" - ")[0]

    def get_error_code(self):
        return self.err_code

    def set_err_info(self):
        self.err_info = _ERR_INFO.get(self.err_code, _UNKNOWN)


class AmdSmiRetryException(AmdSmiLibraryException):
    def __init__(self):
        super().__init__(STATUS["AMDSMI_STATUS_RETRY"])


class AmdSmiTimeoutException(AmdSmiLibraryException):
    def __init__(self):
        super().__init__(STATUS["AMDSMI_STATUS_TIMEOUT"])


class AmdSmiParameterException(AmdSmiException):
    def __init__(self, receivedValue, expectedType, msg=None):
        super().__init__(msg)
        self.err_code = None
        self.actualType = type(receivedValue)
        self.expectedType = expectedType
        self.err_msg = msg or (
            "Invalid parameter:\n" + f"Actual type: {self.actualType}\n" + f"Expected type: {self.expectedType}"
        )

    def __str__(self):
        return self.err_msg


class AmdSmiKeyException(AmdSmiException):
    def __init__(self, key):
        super().__init__()
        self.key = key
        self.err_msg = "Key " + self.key + " is missing from dictionary"

    def __str__(self):
        return self.err_msg


class AmdSmiBdfFormatException(AmdSmiException):
    def __init__(self, bdf):
        super().__init__()
        self.bdf = bdf

    def __str__(self):
        return f"Wrong BDF format: {self.bdf}."


_EXCEPTIONS = (
    AmdSmiException,
    AmdSmiLibraryException,
    AmdSmiRetryException,
    AmdSmiTimeoutException,
    AmdSmiParameterException,
    AmdSmiKeyException,
    AmdSmiBdfFormatException,
)
_ENUMS = (AmdSmiInitFlags, AmdSmiMemoryType, AmdSmiTemperatureType, AmdSmiTemperatureMetric)


@dataclass
class FakeAmdProcess:
    """One process using the GPU; memory in bytes."""

    pid: int
    vram: int
    gtt: int = 0
    cpu: int = 0
    name: str = "python3"


@dataclass
class FakeAmdGpu:
    """One AMD GPU. Memory figures are bytes; power W; temperatures deg C."""

    bdf: str = "0000:03:00.0"
    uuid: str = "3dff74a1-0000-1000-8000-000000000001"
    vram_total: int = 64 * GiB
    vram_used: int = 3 * GiB
    processes: list[FakeAmdProcess] = field(default_factory=list)
    gfx_activity: int | str = 41
    umc_activity: int | str = 9
    mm_activity: int | str = "N/A"
    socket_power: int | str = 215
    #: AmdSmiTemperatureType value -> deg C; a missing sensor raises NOT_SUPPORTED.
    temperatures: dict[int, int] = field(default_factory=lambda: {0: 48, 1: 61, 2: 55})
    #: False: amdsmi_get_gpu_memory_usage/_total raise NOT_SUPPORTED (use vram_usage, MiB).
    memory_usage_api: bool = True
    #: Function name -> amdsmi status code that call raises.
    failures: dict[str, int] = field(default_factory=dict)

    def bdf_tuple(self) -> tuple[int, int, int]:
        return parse_bdf(self.bdf)


def parse_bdf(bdf: str) -> tuple[int, int, int]:
    """``"0000:03:00.0"`` (or ``"03:00.0"``) -> (domain, bus, device)."""
    parts = bdf.strip().split(":")
    if len(parts) == 2:
        parts = ["0"] + parts
    domain, bus, rest = parts
    return int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)


class ProcessorHandle:
    """Stands in for ``amdsmi_wrapper.amdsmi_processor_handle``."""

    def __init__(self, owner: FakeAmdSmi, index: int) -> None:
        self.owner = owner
        self.index = index

    def __repr__(self) -> str:
        return f"<fake amdsmi processor {self.index}>"


class FakeAmdSmi:
    """A configurable amdsmi: ``.module`` is the fake ``amdsmi`` module."""

    def __init__(
        self,
        gpus: list[FakeAmdGpu] | None = None,
        *,
        api: str = "6.1.2",
        init_error: int | None = None,
    ) -> None:
        if api not in ("6.0", "6.1.2"):
            raise ValueError("api must be '6.0' (process handles) or '6.1.2' (process dicts)")
        self.gpus = list(gpus) if gpus is not None else [FakeAmdGpu()]
        self.api = api
        #: amdsmi status code amdsmi_init raises (34: driver not loaded, 10: no permission).
        self.init_error = init_error
        self.refcount = 0
        self.init_calls = 0
        self.shutdown_calls = 0
        self.calls: dict[str, int] = {}
        self.module = self._build_module()

    def _enter(self, name: str, handle: Any = None) -> FakeAmdGpu | None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if handle is None:
            if self.refcount == 0:
                raise AmdSmiLibraryException(STATUS["AMDSMI_STATUS_NOT_INIT"])
            return None
        if not isinstance(handle, ProcessorHandle) or handle.owner is not self:
            raise AmdSmiParameterException(handle, ProcessorHandle)
        if self.refcount == 0:
            raise AmdSmiLibraryException(STATUS["AMDSMI_STATUS_NOT_INIT"])
        gpu = self.gpus[handle.index]
        if name in gpu.failures:
            raise AmdSmiLibraryException(gpu.failures[name])
        return gpu

    def _build_module(self) -> types.ModuleType:
        mod = types.ModuleType("amdsmi", "Fake amdsmi (prunekit.testing.fake_amdsmi).")
        mod.__file__ = __file__
        mod.__version__ = "7.0.2" if self.api == "6.1.2" else "6.0.2"
        for obj in _EXCEPTIONS + _ENUMS:
            setattr(mod, obj.__name__, obj)
        for name, fn in _functions(self).items():
            fn.__module__ = "amdsmi.amdsmi_interface"
            setattr(mod, name, fn)
        mod.fake = self
        return mod


def _check_enum(value: Any, enum: type) -> None:
    if not isinstance(value, enum):
        raise AmdSmiParameterException(value, enum)


def _functions(smi: FakeAmdSmi) -> dict[str, Callable]:
    not_supported = STATUS["AMDSMI_STATUS_NOT_SUPPORTED"]

    def amdsmi_init(flag=AmdSmiInitFlags.INIT_AMD_GPUS):
        _check_enum(flag, AmdSmiInitFlags)
        smi.calls["amdsmi_init"] = smi.calls.get("amdsmi_init", 0) + 1
        if smi.init_error is not None:
            raise AmdSmiLibraryException(smi.init_error)
        smi.refcount += 1
        smi.init_calls += 1

    def amdsmi_shut_down():
        smi._enter("amdsmi_shut_down")
        smi.refcount -= 1
        smi.shutdown_calls += 1

    def amdsmi_get_processor_handles():
        smi._enter("amdsmi_get_processor_handles")
        return [ProcessorHandle(smi, i) for i in range(len(smi.gpus))]

    def amdsmi_get_gpu_device_bdf(processor_handle):
        gpu = smi._enter("amdsmi_get_gpu_device_bdf", processor_handle)
        domain, bus, device = gpu.bdf_tuple()
        function = gpu.bdf.rsplit(".", 1)[1]
        return f"{domain:04x}:{bus:02x}:{device:02x}.{function}"

    def amdsmi_get_gpu_device_uuid(processor_handle):
        return smi._enter("amdsmi_get_gpu_device_uuid", processor_handle).uuid

    def amdsmi_get_processor_handle_from_bdf(bdf):
        smi._enter("amdsmi_get_processor_handle_from_bdf")
        try:
            wanted = parse_bdf(bdf)
        except (ValueError, AttributeError):
            raise AmdSmiBdfFormatException(bdf) from None
        for index, gpu in enumerate(smi.gpus):
            if gpu.bdf_tuple() == wanted:
                return ProcessorHandle(smi, index)
        raise AmdSmiLibraryException(STATUS["AMDSMI_STATUS_NOT_FOUND"])

    def amdsmi_get_gpu_vram_usage(processor_handle):
        gpu = smi._enter("amdsmi_get_gpu_vram_usage", processor_handle)
        return {"vram_total": gpu.vram_total // MiB, "vram_used": gpu.vram_used // MiB}

    def amdsmi_get_gpu_memory_usage(processor_handle, mem_type):
        gpu = smi._enter("amdsmi_get_gpu_memory_usage", processor_handle)
        _check_enum(mem_type, AmdSmiMemoryType)
        if not gpu.memory_usage_api:
            raise AmdSmiLibraryException(not_supported)
        return gpu.vram_used if mem_type == AmdSmiMemoryType.VRAM else 0

    def amdsmi_get_gpu_memory_total(processor_handle, mem_type):
        gpu = smi._enter("amdsmi_get_gpu_memory_total", processor_handle)
        _check_enum(mem_type, AmdSmiMemoryType)
        if not gpu.memory_usage_api:
            raise AmdSmiLibraryException(not_supported)
        return gpu.vram_total if mem_type == AmdSmiMemoryType.VRAM else 0

    def _process_dict(proc: FakeAmdProcess, with_occupancy: bool) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": proc.name,
            "pid": proc.pid,
            "mem": proc.vram + proc.gtt + proc.cpu,
            "engine_usage": {"gfx": 0, "enc": 0},
            "memory_usage": {"gtt_mem": proc.gtt, "cpu_mem": proc.cpu, "vram_mem": proc.vram},
        }
        if with_occupancy:
            info["cu_occupancy"] = "N/A"
        return info

    def amdsmi_get_gpu_process_list(processor_handle):
        gpu = smi._enter("amdsmi_get_gpu_process_list", processor_handle)
        if smi.api == "6.0":
            return [ctypes.c_uint32(proc.pid) for proc in gpu.processes]
        return [_process_dict(proc, True) for proc in gpu.processes]

    def amdsmi_get_gpu_process_info(processor_handle, process):
        gpu = smi._enter("amdsmi_get_gpu_process_info", processor_handle)
        if not isinstance(process, ctypes.c_uint32):
            raise AmdSmiParameterException(process, ctypes.c_uint32)
        for proc in gpu.processes:
            if proc.pid == process.value:
                return _process_dict(proc, False)
        raise AmdSmiLibraryException(STATUS["AMDSMI_STATUS_NOT_FOUND"])

    def amdsmi_get_gpu_activity(processor_handle):
        gpu = smi._enter("amdsmi_get_gpu_activity", processor_handle)
        return {"gfx_activity": gpu.gfx_activity, "umc_activity": gpu.umc_activity, "mm_activity": gpu.mm_activity}

    def amdsmi_get_power_info(processor_handle):
        gpu = smi._enter("amdsmi_get_power_info", processor_handle)
        info = {
            "socket_power": gpu.socket_power,
            "current_socket_power": gpu.socket_power,
            "average_socket_power": "N/A",
            "gfx_voltage": "N/A",
            "soc_voltage": "N/A",
            "mem_voltage": "N/A",
            "power_limit": 300,
        }
        if smi.api == "6.0":  # ROCm 6.0 had no socket_power field
            del info["socket_power"]
        return info

    def amdsmi_get_temp_metric(processor_handle, sensor_type, metric):
        gpu = smi._enter("amdsmi_get_temp_metric", processor_handle)
        _check_enum(sensor_type, AmdSmiTemperatureType)
        _check_enum(metric, AmdSmiTemperatureMetric)
        if metric != AmdSmiTemperatureMetric.CURRENT or int(sensor_type) not in gpu.temperatures:
            raise AmdSmiLibraryException(not_supported)
        return gpu.temperatures[int(sensor_type)]

    names = {name: fn for name, fn in locals().items() if name.startswith("amdsmi_")}
    if smi.api != "6.0":  # removed in 6.1.2: the process list holds the dicts itself
        del names["amdsmi_get_gpu_process_info"]
    return names


def torch_properties(gpu: FakeAmdGpu) -> SimpleNamespace:
    """What ``torch.cuda.get_device_properties`` says about ``gpu`` on a ROCm build."""
    domain, bus, device = gpu.bdf_tuple()
    return SimpleNamespace(
        name="AMD Instinct Fake",
        total_memory=gpu.vram_total,
        pci_domain_id=domain,
        pci_bus_id=bus,
        pci_device_id=device,
        uuid=gpu.uuid,
    )


class _MissingLibraryLoader(importlib.abc.Loader):
    def create_module(self, spec):  # default module creation
        return None

    def exec_module(self, module):
        print("Could not load libamd_smi.so")
        print("Unable to find libamd_smi.so library try installing amd-smi-lib from your package manager")
        raise KeyError("libamd_smi.so")


class _MissingLibraryFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "amdsmi":
            return importlib.machinery.ModuleSpec("amdsmi", _MissingLibraryLoader())
        return None


@contextlib.contextmanager
def library_missing() -> Iterator[None]:
    """Within the block, ``import amdsmi`` prints and raises ``KeyError: 'libamd_smi.so'``.

    This is what the real package does on a machine without ``libamd_smi.so``.
    """
    saved = sys.modules.pop("amdsmi", None)
    finder = _MissingLibraryFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        sys.modules.pop("amdsmi", None)
        if saved is not None:
            sys.modules["amdsmi"] = saved


__all__ = [
    "FakeAmdGpu",
    "FakeAmdProcess",
    "FakeAmdSmi",
    "GiB",
    "MiB",
    "STATUS",
    "library_missing",
    "parse_bdf",
    "torch_properties",
]
