"""The GPU vendor sampler skeleton, with a toy vendor library (no GPU needed)."""

from __future__ import annotations

import os
import types

import pytest
import torch

from prunekit.api import DeviceSampler, PciAddress
from prunekit.testing.sampler_conformance import check_sampler, check_unavailable


class ToyError(Exception):
    pass


class Unsupported(ToyError):
    pass


class ToyLibrary:
    """Two GPUs by bus id; counts opens and closes."""

    def __init__(self, processes=None, fail_memory=False) -> None:
        self.gpus = {"0000:03:00.0": "gpu-a", "0000:41:00.0": "gpu-b"}
        self.processes = processes if processes is not None else [(os.getpid(), 4096), (1, 10)]
        self.fail_memory = fail_memory
        self.open = 0


class Toy(DeviceSampler):
    name = "toy"
    library_name = "toylib"
    reads = "a toy GPU"
    cpu_hint = "use --device cuda."
    check_hint = "check toy-smi."
    labels = {"device_used_bytes": "device-wide"}
    library = ToyLibrary()

    def open_library(self):
        self.library.open += 1
        return self.library

    def close_library(self, lib):
        lib.open -= 1

    def library_errors(self):
        return (ToyError,)

    def is_unsupported(self, exc):
        return isinstance(exc, Unsupported)

    def find_handle(self, address, props):
        return self.lib.gpus.get(address.bus_id()) if address else None

    def probe(self):
        if self.lib.fail_memory:
            raise ToyError("memory read failed")

    def read(self):
        return {"device_used_bytes": 1 << 20, "fan_percent": self.optional("fan", self._fan)}

    def _fan(self):
        raise Unsupported("no fan")

    def processes(self):
        return self.lib.processes


@pytest.fixture
def gpu_at(monkeypatch):
    def place(bus: int) -> None:
        props = types.SimpleNamespace(pci_domain_id=0, pci_bus_id=bus, pci_device_id=0, name="Toy GPU")
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)

    return place


def test_pci_addresses_parse_once_for_every_vendor():
    assert PciAddress.parse("00000000:41:00.0") == PciAddress.parse("41:00.0") == (0, 0x41, 0)
    props = types.SimpleNamespace(pci_domain_id=1, pci_bus_id=0xA3, pci_device_id=0x1F)
    assert PciAddress.of(props).bus_id() == "0001:a3:1f.0"
    assert PciAddress.of(props).bus_id(8) == "00000001:A3:1F.0"
    assert PciAddress.of(object()) is None


def test_the_skeleton_finds_the_gpu_and_conforms(gpu_at):
    gpu_at(0x41)
    Toy.library = ToyLibrary()
    report = check_sampler(Toy, torch.device("cuda", 0), name="toy")
    assert report.figures == {"device_used_bytes", "process_used_bytes"}  # the unsupported fan is dropped
    sampler = Toy(torch.device("cuda", 0))
    sampler.start()
    assert sampler.sample()["process_used_bytes"] == 4096
    summary = sampler.summary()
    sampler.stop()
    assert summary["device"] == {"torch_device": "cuda:0", "pci_bus_id": "0000:41:00.0", "name": "Toy GPU"}
    assert summary["unsupported"] == {"fan": "Unsupported: no fan"} and summary["process_memory"] == "reported"
    assert Toy.library.open == 0


def test_every_failure_to_start_is_one_line_and_releases_the_library(gpu_at):
    Toy.library = ToyLibrary()
    assert "this run is on cpu; use --device cuda." in check_unavailable(Toy, torch.device("cpu"))
    gpu_at(0x99)
    message = check_unavailable(Toy, torch.device("cuda", 0))
    assert message.startswith("Sampler 'toy': toylib has no GPU at PCI 0000:99:00.0 (torch cuda:0")
    gpu_at(0x03)
    Toy.library = ToyLibrary(fail_memory=True)
    message = check_unavailable(Toy, torch.device("cuda", 0))
    assert message == "Sampler 'toy': toylib cannot read cuda:0 (ToyError: memory read failed); check toy-smi."
    assert Toy.library.open == 0


@pytest.mark.parametrize(
    "processes, note",
    [
        ([(1, 10)], "is not in toylib's process list"),
        ([(os.getpid(), None)], "unavailable: no memory figure for this process"),
    ],
)
def test_process_memory_is_absent_with_the_reason_never_zero(gpu_at, processes, note):
    gpu_at(0x03)
    Toy.library = ToyLibrary(processes=processes)
    sampler = Toy(torch.device("cuda", 0))
    sampler.start()
    try:
        assert "process_used_bytes" not in sampler.sample()
        assert note in sampler.summary()["process_memory"]
    finally:
        sampler.stop()


def test_sampling_before_start_is_an_error():
    with pytest.raises(RuntimeError, match="sampler 'toy' is not started"):
        Toy(torch.device("cuda", 0)).sample()
