"""The skeleton every GPU vendor sampler shares; a vendor plugin adds only its library calls.

:class:`DeviceSampler` finds the run's GPU by PCI bus id (never by index, which
``CUDA_VISIBLE_DEVICES``/``HIP_VISIBLE_DEVICES`` renumber), turns every failure to
start into one-line :class:`SamplerUnavailable`, releases the library on every
path, picks this process out of the vendor's process list, drops figures the GPU
does not support (listing them in the summary) and writes the summary.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, NamedTuple

import torch

from prunekit.core.measure.sampling import SamplerUnavailable


def one_line(exc: BaseException) -> str:
    """``"Type: message"`` on one line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class PciAddress(NamedTuple):
    """A GPU's PCI location: the one identity torch and every vendor library share."""

    domain: int
    bus: int
    device: int

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        """``"0000:03:00.0"``, ``"00000000:03:00.0"`` or ``"03:00.0"`` (function ignored)."""
        parts = str(text).strip().split(":")
        if len(parts) == 2:
            parts = ["0", *parts]
        domain, bus, rest = parts
        return cls(int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16))

    @classmethod
    def of(cls, props: Any) -> PciAddress | None:
        """From torch's device properties (``pci_domain_id``...), None where torch lacks them."""
        try:
            return cls(int(props.pci_domain_id), int(props.pci_bus_id), int(props.pci_device_id))
        except (AttributeError, TypeError, ValueError):
            return None

    def bus_id(self, domain_digits: int = 4) -> str:
        """``"0000:03:00.0"``; NVML writes the domain with 8 upper-case digits."""
        if domain_digits == 8:
            return f"{self.domain:08X}:{self.bus:02X}:{self.device:02X}.0"
        return f"{self.domain:04x}:{self.bus:02x}:{self.device:02x}.0"


def device_properties(device: torch.device) -> Any:
    """torch's properties of ``device`` (PCI ids, UUID, name)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_properties(index)


class DeviceSampler:
    """Base class of GPU vendor samplers (``scope = "device"``).

    A subclass sets the class attributes and implements the vendor calls:
    :meth:`open_library` (import and initialise, or raise SamplerUnavailable),
    :meth:`close_library`, :meth:`find_handle`, :meth:`read` (the device-wide
    figures), :meth:`processes` (``(pid, bytes or None)`` per process on the GPU)
    and :meth:`is_unsupported`; optionally :meth:`probe` and :meth:`vendor_summary`.
    """

    scope = "device"
    #: The sampler's registered name and the vendor library, for messages.
    name: ClassVar[str] = ""
    library_name: ClassVar[str] = ""
    #: What the sampler reads, and what to do on a CPU run.
    reads: ClassVar[str] = ""
    cpu_hint: ClassVar[str] = ""
    #: The environment variable that renumbers GPUs, and how to check the driver.
    visible_devices: ClassVar[str] = "CUDA_VISIBLE_DEVICES"
    check_hint: ClassVar[str] = ""
    #: Why a pid can be missing from the process list, and what "no figure" means here.
    missing_pid_hint: ClassVar[str] = "in a container the list may hold host pids"
    no_process_figure: ClassVar[str] = "no memory figure for this process"
    #: Hex digits of the PCI domain in bus ids this library prints (NVML: 8, others: 4).
    bus_id_digits: ClassVar[int] = 4
    #: Figure name -> what it measures, copied into the summary.
    labels: ClassVar[dict[str, str]] = {}

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.lib: Any = None
        self.handle: Any = None
        self.identity: dict[str, Any] = {}
        self.unsupported: dict[str, str] = {}
        self.memory_api = "not sampled yet"
        self.process_api = "not sampled yet"
        self.process_note = "not sampled yet"
        self.process_samples = 0

    # -- what a vendor implements ------------------------------------------------
    def open_library(self) -> Any:
        """Import and initialise the vendor library; raise SamplerUnavailable (one line) if it cannot."""
        raise NotImplementedError

    def close_library(self, lib: Any) -> None:
        """Shut the library down (it is open)."""
        raise NotImplementedError

    def library_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions of the library meaning it cannot read this GPU."""
        raise NotImplementedError

    def find_handle(self, address: PciAddress | None, props: Any) -> Any:
        """The library's handle of the GPU at ``address``, or None."""
        raise NotImplementedError

    def probe(self) -> None:
        """Settle which API versions work (called once at start, after the handle is found)."""

    def read(self) -> dict[str, float]:
        """Device-wide figures (memory, utilisation...)."""
        raise NotImplementedError

    def processes(self) -> list[tuple[int, int | None]]:
        """``(pid, used bytes or None)`` for every process the library lists on the GPU."""
        raise NotImplementedError

    def is_unsupported(self, exc: BaseException) -> bool:
        """Whether ``exc`` means "not supported / not permitted here" (the figure is dropped)."""
        raise NotImplementedError

    def vendor_summary(self) -> dict[str, Any]:
        """Extra summary entries."""
        return {}

    # -- the shared skeleton --------------------------------------------------------
    def start(self) -> None:
        if self.device.type != "cuda":
            raise SamplerUnavailable(
                f"Sampler '{self.name}' reads {self.reads}, but this run is on {self.device.type}; {self.cpu_hint}"
            )
        self.lib = self.open_library()
        try:
            self.handle = self._find()
            self.probe()
            self.process_used()
        except self.library_errors() as exc:
            self.release()
            raise SamplerUnavailable(
                f"Sampler '{self.name}': {self.library_name} cannot read {self.device} ({one_line(exc)}); {self.check_hint}"
            ) from None
        except BaseException:
            self.release()
            raise

    def _find(self) -> Any:
        try:
            props = device_properties(self.device)
        except Exception as exc:
            raise SamplerUnavailable(
                f"Sampler '{self.name}': torch cannot see {self.device} ({one_line(exc)}); "
                f"check {self.visible_devices} and the GPU build of torch."
            ) from None
        address = PciAddress.of(props)
        bus_id = address.bus_id(self.bus_id_digits) if address else None
        handle = self.find_handle(address, props)
        if handle is None:
            raise SamplerUnavailable(
                f"Sampler '{self.name}': {self.library_name} has no GPU at PCI {bus_id or 'unknown'} "
                f"(torch {self.device}, {self.visible_devices}={os.environ.get(self.visible_devices, 'unset')}){self.not_found_hint()}"
            )
        self.identity = {
            "torch_device": str(self.device),
            "pci_bus_id": bus_id,
            "name": str(getattr(props, "name", "")),
            **self.identity,
        }
        return handle

    def not_found_hint(self) -> str:
        """Appended to the "no GPU at PCI ..." message (e.g. what the library does see)."""
        return ""

    def stop(self) -> None:
        self.release()

    def release(self) -> None:
        lib, self.lib, self.handle = self.lib, None, None
        if lib is not None:
            self.close_library(lib)

    def sample(self) -> dict[str, float]:
        if self.handle is None:
            raise RuntimeError(f"sampler '{self.name}' is not started")
        figures = dict(self.read())
        process = self.process_used()
        if process is not None:
            figures["process_used_bytes"] = process
        return figures

    def optional(self, what: str, read: Any) -> Any:
        """A figure the GPU may not support: "unsupported" disables it (listed in the summary)."""
        if what in self.unsupported:
            return None
        try:
            return read()
        except Exception as exc:
            if not self.is_unsupported(exc):
                raise
            self.unsupported[what] = one_line(exc)
            return None

    def process_used(self) -> int | None:
        """This process's GPU memory, or None (with the reason kept for the summary, never 0)."""
        try:
            listed = self.processes()
        except Exception as exc:
            if not self.is_unsupported(exc):
                raise
            self.process_note = f"unavailable: {self.library_name} cannot list processes on this GPU ({one_line(exc)})"
            return None
        pid = os.getpid()
        mine = [used for p, used in listed if p == pid]
        if not mine:
            self.process_note = f"unavailable: pid {pid} is not in {self.library_name}'s process list ({self.missing_pid_hint})"
            return None
        if any(used is None for used in mine):
            self.process_note = f"unavailable: {self.no_process_figure}"
            return None
        self.process_samples += 1
        self.process_note = "reported"
        return int(sum(used for used in mine if used is not None))

    def summary(self) -> dict[str, Any]:
        return {
            "device": dict(self.identity),
            "memory_api": self.memory_api,
            "process_api": self.process_api,
            "process_memory": self.process_note,
            "process_samples": self.process_samples,
            "unsupported": dict(self.unsupported),
            "labels": dict(self.labels),
            **self.vendor_summary(),
        }
