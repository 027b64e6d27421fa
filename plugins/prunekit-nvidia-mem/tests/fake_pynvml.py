"""A fake ``pynvml`` module (nvidia-ml-py) for testing NVML samplers without a GPU.

It mimics nvidia-ml-py 13.x where samplers touch it: function names and
parameter names, ctypes result structures (bytes, %, mW, deg C), the
``NVMLError`` hierarchy (``NVMLError(code)`` builds the matching
``NVMLError_*`` subclass, errors carry ``.value``), ``NVMLLibraryMismatchError``
(not an NVMLError) from the unversioned process query, ref-counted
``nvmlInit``/``nvmlShutdown`` and ``NVMLError_Uninitialized`` outside them.

Usage::

    nvml = FakeNvml([FakeGpu(pci_bus_id="00000000:01:00.0", used=2 << 30)])
    monkeypatch.setitem(sys.modules, "pynvml", nvml.module)

Every ``FakeNvml`` builds its own module, so state never leaks between tests.
Change a ``FakeGpu`` between samples to script a run; put a function name in
``FakeGpu.failures`` (name -> NVML error code) to make that call fail.
"""

from __future__ import annotations

import string
import types
from collections.abc import Callable
from ctypes import Structure, c_char, c_uint, c_ulonglong
from dataclasses import dataclass, field
from functools import wraps
from types import SimpleNamespace
from typing import Any

NVML_SUCCESS = 0
#: Every NVML_ERROR_* constant of nvidia-ml-py 13.615.71, with its value.
ERROR_CODES: dict[str, int] = {
    "NVML_ERROR_UNINITIALIZED": 1,
    "NVML_ERROR_INVALID_ARGUMENT": 2,
    "NVML_ERROR_NOT_SUPPORTED": 3,
    "NVML_ERROR_NO_PERMISSION": 4,
    "NVML_ERROR_ALREADY_INITIALIZED": 5,
    "NVML_ERROR_NOT_FOUND": 6,
    "NVML_ERROR_INSUFFICIENT_SIZE": 7,
    "NVML_ERROR_INSUFFICIENT_POWER": 8,
    "NVML_ERROR_DRIVER_NOT_LOADED": 9,
    "NVML_ERROR_TIMEOUT": 10,
    "NVML_ERROR_IRQ_ISSUE": 11,
    "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
    "NVML_ERROR_FUNCTION_NOT_FOUND": 13,
    "NVML_ERROR_CORRUPTED_INFOROM": 14,
    "NVML_ERROR_GPU_IS_LOST": 15,
    "NVML_ERROR_RESET_REQUIRED": 16,
    "NVML_ERROR_OPERATING_SYSTEM": 17,
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": 18,
    "NVML_ERROR_IN_USE": 19,
    "NVML_ERROR_MEMORY": 20,
    "NVML_ERROR_NO_DATA": 21,
    "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED": 22,
    "NVML_ERROR_INSUFFICIENT_RESOURCES": 23,
    "NVML_ERROR_FREQ_NOT_SUPPORTED": 24,
    "NVML_ERROR_ARGUMENT_VERSION_MISMATCH": 25,
    "NVML_ERROR_DEPRECATED": 26,
    "NVML_ERROR_NOT_READY": 27,
    "NVML_ERROR_GPU_NOT_FOUND": 28,
    "NVML_ERROR_INVALID_STATE": 29,
    "NVML_ERROR_RESET_TYPE_NOT_SUPPORTED": 30,
    "NVML_ERROR_UNKNOWN": 999,
}
_MESSAGES = {
    1: "Uninitialized",
    2: "Invalid Argument",
    3: "Not Supported",
    4: "Insufficient Permissions",
    5: "Already Initialized",
    6: "Not Found",
    9: "Driver Not Loaded",
    12: "NVML Shared Library Not Found",
    13: "Function Not Found",
    15: "GPU is lost",
    18: "RM has detected an NVML/RM version mismatch.",
    999: "Unknown Error",
}
NVML_TEMPERATURE_GPU = 0
nvmlMemory_v2 = 0x02000028
#: usedGpuMemory / instance ids NVML reports as "not available".
NOT_AVAILABLE_ULL = 0xFFFFFFFFFFFFFFFF
NOT_AVAILABLE_UINT = 0xFFFFFFFF
MiB = 1 << 20
GiB = 1 << 30


# Result structures, with the field names and ctypes of nvidia-ml-py.
class c_nvmlMemory_t(Structure):
    _fields_ = [("total", c_ulonglong), ("free", c_ulonglong), ("used", c_ulonglong)]


class c_nvmlMemory_v2_t(Structure):
    _fields_ = [
        ("version", c_uint),
        ("total", c_ulonglong),
        ("reserved", c_ulonglong),
        ("free", c_ulonglong),
        ("used", c_ulonglong),
    ]


class c_nvmlUtilization_t(Structure):
    _fields_ = [("gpu", c_uint), ("memory", c_uint)]


class c_nvmlProcessInfo_v2_t(Structure):
    _fields_ = [
        ("pid", c_uint),
        ("usedGpuMemory", c_ulonglong),
        ("gpuInstanceId", c_uint),
        ("computeInstanceId", c_uint),
    ]


class nvmlPciInfo_t(Structure):
    _fields_ = [
        ("busIdLegacy", c_char * 16),
        ("domain", c_uint),
        ("bus", c_uint),
        ("device", c_uint),
        ("pciDeviceId", c_uint),
        ("pciSubSystemId", c_uint),
        ("busId", c_char * 32),
    ]


class nvmlFriendlyObject:
    """What nvidia-ml-py returns for process entries: plain attributes."""

    def __init__(self, dictionary: dict[str, Any]) -> None:
        for key, value in dictionary.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return str(self.__dict__)


@dataclass
class FakeProcess:
    """One entry of nvmlDeviceGetComputeRunningProcesses (``used=None``: NVML cannot tell)."""

    pid: int
    used: int | None


@dataclass
class FakeGpu:
    """One NVML device. Memory figures are bytes; ``used`` excludes ``reserved``."""

    pci_bus_id: str = "00000000:01:00.0"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000001"
    name: str = "NVIDIA Fake GPU"
    total: int = 80 * GiB
    reserved: int = 512 * MiB
    used: int = 4 * GiB
    processes: list[FakeProcess] = field(default_factory=list)
    gpu_util: int = 37
    memory_util: int = 12
    power_mw: int = 123_456
    temperature_c: int = 54
    #: False: an older driver without nvmlDeviceGetMemoryInfo_v2 (FunctionNotFound).
    memory_v2: bool = True
    #: "v3" (current), "v2" (unversioned call raises NVMLLibraryMismatchError,
    #: _v3 raises FunctionNotFound, _v2 works) or an NVML error code for all of them.
    process_api: str | int = "v3"
    #: Function name -> NVML error code that call raises (checked on every call).
    failures: dict[str, int] = field(default_factory=dict)

    def pci_tuple(self) -> tuple[int, int, int]:
        domain, bus, rest = self.pci_bus_id.split(":")
        return int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)


class FakeNvml:
    """A configurable NVML: ``.module`` is the fake ``pynvml`` module."""

    def __init__(self, gpus: list[FakeGpu] | None = None, init_error: int | None = None) -> None:
        self.gpus = list(gpus) if gpus is not None else [FakeGpu()]
        #: NVML error code nvmlInit raises (e.g. 12 library not found, 9 driver not loaded).
        self.init_error = init_error
        self.refcount = 0
        self.init_calls = 0
        self.shutdown_calls = 0
        self.calls: dict[str, int] = {}
        self.module = self._build_module()

    # -- helpers used by the fake functions --------------------------------
    def _error(self, code: int) -> Exception:
        return self.module.NVMLError(code)

    def _enter(self, name: str, handle: Any = None) -> FakeGpu | None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.refcount == 0:
            raise self._error(ERROR_CODES["NVML_ERROR_UNINITIALIZED"])
        if handle is None:
            return None
        if not isinstance(handle, _Handle) or handle.owner is not self:
            raise self._error(ERROR_CODES["NVML_ERROR_INVALID_ARGUMENT"])
        gpu = self.gpus[handle.index]
        if name in gpu.failures:
            raise self._error(gpu.failures[name])
        return gpu

    def _build_module(self) -> types.ModuleType:
        mod = types.ModuleType("pynvml", "Fake pynvml (prunekit.testing.fake_pynvml).")
        mod.__file__ = __file__
        mod.NVML_SUCCESS = NVML_SUCCESS
        for name, value in ERROR_CODES.items():
            setattr(mod, name, value)
        mod.NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
        mod.nvmlMemory_v2 = nvmlMemory_v2
        for cls in (c_nvmlMemory_t, c_nvmlMemory_v2_t, c_nvmlUtilization_t, c_nvmlProcessInfo_v2_t, nvmlPciInfo_t):
            setattr(mod, cls.__name__, cls)
        mod.c_nvmlProcessInfo_v3_t = c_nvmlProcessInfo_v2_t
        mod.c_nvmlProcessInfo_t = c_nvmlProcessInfo_v2_t
        mod.nvmlFriendlyObject = nvmlFriendlyObject
        _add_errors(mod)
        for name, fn in _functions(self).items():
            fn.__module__ = "pynvml"
            setattr(mod, name, fn)
        mod.fake = self  # lets tests reach the fake from the installed module
        return mod


class _Handle:
    """Stands in for ``c_nvmlDevice_t``; only valid with the FakeNvml that made it."""

    def __init__(self, owner: FakeNvml, index: int) -> None:
        self.owner = owner
        self.index = index

    def __repr__(self) -> str:
        return f"<fake nvmlDevice {self.index}>"


def _add_errors(mod: types.ModuleType) -> None:
    """Build NVMLError and one subclass per code, the way nvidia-ml-py does."""

    class NVMLLibraryMismatchError(Exception):
        pass

    class NVMLError(Exception):
        _valClassMapping: dict[int, type] = {}

        def __new__(typ, value):  # noqa: N804 - mirrors nvidia-ml-py
            if typ == NVMLError:
                typ = NVMLError._valClassMapping.get(value, typ)
            obj = Exception.__new__(typ)
            obj.value = value
            return obj

        def __str__(self) -> str:
            return _MESSAGES.get(self.value, "NVML Error with code %d" % self.value)

        def __eq__(self, other):  # as in nvidia-ml-py (which makes errors unhashable)
            return self.value == other.value

    for cls in (NVMLError, NVMLLibraryMismatchError):
        cls.__module__ = "pynvml"
        setattr(mod, cls.__name__, cls)

    for err_name, err_val in ERROR_CODES.items():
        class_name = "NVMLError_" + string.capwords(err_name.replace("NVML_ERROR_", ""), "_").replace("_", "")

        def gen_new(val: int) -> Callable:
            def new(typ, *args):
                return NVMLError.__new__(typ, val)

            return new

        cls = type(class_name, (NVMLError,), {"__new__": gen_new(err_val)})
        cls.__module__ = "pynvml"
        setattr(mod, class_name, cls)
        NVMLError._valClassMapping[err_val] = cls

    def nvmlExceptionClass(nvmlErrorCode):
        if nvmlErrorCode not in NVMLError._valClassMapping:
            raise ValueError("nvmlErrorCode %s is not valid" % nvmlErrorCode)
        return NVMLError._valClassMapping[nvmlErrorCode]

    mod.nvmlExceptionClass = nvmlExceptionClass


def _str_args(func: Callable) -> Callable:
    """nvidia-ml-py's convertStrBytes: str arguments in, str results out."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        args = tuple(a.decode() if isinstance(a, bytes) else a for a in args)
        result = func(*args, **kwargs)
        return result.decode() if isinstance(result, bytes) else result

    return wrapper


def _norm_bus_id(bus_id: str) -> tuple[int, int, int] | None:
    """NVML accepts "domain:bus:device.function" with a 4- or 8-digit domain, or "bus:device.function"."""
    try:
        parts = bus_id.strip().split(":")
        if len(parts) == 2:
            parts = ["0"] + parts
        domain, bus, rest = parts
        return int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)
    except ValueError:
        return None


def _functions(nv: FakeNvml) -> dict[str, Callable]:
    mod = lambda: nv.module  # noqa: E731 - late binding: the module is built after this

    def nvmlInitWithFlags(flags):
        nv.calls["nvmlInitWithFlags"] = nv.calls.get("nvmlInitWithFlags", 0) + 1
        if nv.init_error is not None:
            raise nv._error(nv.init_error)
        nv.refcount += 1
        nv.init_calls += 1
        return None

    def nvmlInit():
        nvmlInitWithFlags(0)
        return None

    def nvmlShutdown():
        nv._enter("nvmlShutdown")
        nv.refcount -= 1
        nv.shutdown_calls += 1
        return None

    @_str_args
    def nvmlSystemGetDriverVersion():
        nv._enter("nvmlSystemGetDriverVersion")
        return "580.00.fake"

    def nvmlDeviceGetCount():
        nv._enter("nvmlDeviceGetCount")
        return len(nv.gpus)

    def nvmlDeviceGetHandleByIndex(index):
        nv._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(nv.gpus):
            raise nv._error(ERROR_CODES["NVML_ERROR_INVALID_ARGUMENT"])
        return _Handle(nv, index)

    @_str_args
    def nvmlDeviceGetHandleByPciBusId(pciBusId):
        nv._enter("nvmlDeviceGetHandleByPciBusId")
        wanted = _norm_bus_id(pciBusId)
        if wanted is None:
            raise nv._error(ERROR_CODES["NVML_ERROR_INVALID_ARGUMENT"])
        for index, gpu in enumerate(nv.gpus):
            if gpu.pci_tuple() == wanted:
                return _Handle(nv, index)
        raise nv._error(ERROR_CODES["NVML_ERROR_NOT_FOUND"])

    @_str_args
    def nvmlDeviceGetHandleByUUID(uuid):
        nv._enter("nvmlDeviceGetHandleByUUID")
        for index, gpu in enumerate(nv.gpus):
            if gpu.uuid == uuid:
                return _Handle(nv, index)
        raise nv._error(ERROR_CODES["NVML_ERROR_NOT_FOUND"])

    @_str_args
    def nvmlDeviceGetUUID(handle):
        return nv._enter("nvmlDeviceGetUUID", handle).uuid

    @_str_args
    def nvmlDeviceGetName(handle):
        return nv._enter("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetPciInfo(handle):
        gpu = nv._enter("nvmlDeviceGetPciInfo", handle)
        domain, bus, device = gpu.pci_tuple()
        info = nvmlPciInfo_t()
        info.domain, info.bus, info.device = domain, bus, device
        info.busId = gpu.pci_bus_id.encode()
        info.busIdLegacy = gpu.pci_bus_id[-12:].encode()
        return info

    def nvmlDeviceGetMemoryInfo(handle, version=None):
        gpu = nv._enter("nvmlDeviceGetMemoryInfo", handle)
        if not version:
            memory = c_nvmlMemory_t()
            memory.total = gpu.total
            memory.used = gpu.used + gpu.reserved  # v1 counts reserved memory as used
            memory.free = gpu.total - memory.used
            return memory
        if not gpu.memory_v2:
            raise nv._error(ERROR_CODES["NVML_ERROR_FUNCTION_NOT_FOUND"])
        if version != nvmlMemory_v2:
            raise nv._error(ERROR_CODES["NVML_ERROR_ARGUMENT_VERSION_MISMATCH"])
        memory = c_nvmlMemory_v2_t()
        memory.version = version
        memory.total, memory.reserved, memory.used = gpu.total, gpu.reserved, gpu.used
        memory.free = gpu.total - gpu.reserved - gpu.used
        return memory

    def _processes(name: str, handle: Any, version: str) -> list[nvmlFriendlyObject]:
        gpu = nv._enter(name, handle)
        if isinstance(gpu.process_api, int):
            raise nv._error(gpu.process_api)
        if version == "v3" and gpu.process_api != "v3":
            raise nv._error(ERROR_CODES["NVML_ERROR_FUNCTION_NOT_FOUND"])
        out = []
        for proc in gpu.processes:
            info = c_nvmlProcessInfo_v2_t()
            info.pid = proc.pid
            info.usedGpuMemory = NOT_AVAILABLE_ULL if proc.used is None else proc.used
            info.gpuInstanceId = info.computeInstanceId = NOT_AVAILABLE_UINT
            obj = nvmlFriendlyObject({k: getattr(info, k) for k, _ in info._fields_})
            if obj.usedGpuMemory == NOT_AVAILABLE_ULL:
                obj.usedGpuMemory = None
            out.append(obj)
        return out

    def nvmlDeviceGetComputeRunningProcesses_v2(handle):
        return _processes("nvmlDeviceGetComputeRunningProcesses_v2", handle, "v2")

    def nvmlDeviceGetComputeRunningProcesses_v3(handle):
        return _processes("nvmlDeviceGetComputeRunningProcesses_v3", handle, "v3")

    def nvmlDeviceGetComputeRunningProcesses(handle):
        nv.calls["nvmlDeviceGetComputeRunningProcesses"] = nv.calls.get("nvmlDeviceGetComputeRunningProcesses", 0) + 1
        try:
            return nvmlDeviceGetComputeRunningProcesses_v3(handle)
        except mod().NVMLError_FunctionNotFound:
            raise mod().NVMLLibraryMismatchError(
                "Unversioned function called and the pyNVML version does not match the NVML lib version. "
                "Either use matching pyNVML and NVML lib versions or use a versioned function such as "
                "nvmlDeviceGetComputeRunningProcesses_v2"
            )

    def nvmlDeviceGetUtilizationRates(handle):
        gpu = nv._enter("nvmlDeviceGetUtilizationRates", handle)
        util = c_nvmlUtilization_t()
        util.gpu, util.memory = gpu.gpu_util, gpu.memory_util
        return util

    def nvmlDeviceGetPowerUsage(handle):
        return nv._enter("nvmlDeviceGetPowerUsage", handle).power_mw

    def nvmlDeviceGetTemperature(handle, sensor):
        gpu = nv._enter("nvmlDeviceGetTemperature", handle)
        if sensor != NVML_TEMPERATURE_GPU:
            raise nv._error(ERROR_CODES["NVML_ERROR_INVALID_ARGUMENT"])
        return gpu.temperature_c

    return {name: fn for name, fn in locals().items() if name.startswith("nvml")}


def torch_properties(gpu: FakeGpu, *, name: str | None = None) -> SimpleNamespace:
    """What ``torch.cuda.get_device_properties`` says about ``gpu`` (PCI ids, UUID)."""
    domain, bus, device = gpu.pci_tuple()
    uuid = gpu.uuid[4:] if gpu.uuid.startswith("GPU-") else gpu.uuid
    return SimpleNamespace(
        name=name or gpu.name,
        total_memory=gpu.total,
        pci_domain_id=domain,
        pci_bus_id=bus,
        pci_device_id=device,
        uuid=uuid,  # torch's _CUuuid prints without the "GPU-" prefix
    )


__all__ = ["FakeGpu", "FakeNvml", "FakeProcess", "GiB", "MiB", "torch_properties"]
