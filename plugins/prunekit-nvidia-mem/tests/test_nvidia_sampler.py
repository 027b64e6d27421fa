"""The nvidia sampler against prunekit.testing.fake_pynvml (no GPU needed)."""

from __future__ import annotations

import json
import os
import sys

import fake_pynvml as fake
import pytest
import torch
from fake_pynvml import FakeGpu, FakeNvml, FakeProcess, GiB, MiB

import prunekit_nvidia_mem.sampler as nvmod
from prunekit.api import PciAddress
from prunekit.testing import SamplingThread
from prunekit.testing.devices import install_fake_library
from prunekit.testing.sampler_conformance import check_sampler, check_unavailable
from prunekit_nvidia_mem import NvidiaSampler

CUDA0 = torch.device("cuda", 0)
ME = os.getpid()


def two_gpus() -> list[FakeGpu]:
    return [
        FakeGpu(
            pci_bus_id="00000000:01:00.0",
            uuid="GPU-aaaaaaaa-0000-0000-0000-000000000001",
            total=80 * GiB,
            reserved=500 * MiB,
            used=1 * GiB,
            processes=[FakeProcess(4242, 900 * MiB)],
        ),
        FakeGpu(
            pci_bus_id="00000000:41:00.0",
            uuid="GPU-bbbbbbbb-0000-0000-0000-000000000002",
            total=40 * GiB,
            reserved=300 * MiB,
            used=7 * GiB + 123,
            processes=[FakeProcess(4242, 1 * GiB), FakeProcess(ME, 3 * GiB + 4096)],
        ),
    ]


@pytest.fixture
def install(monkeypatch):
    """install(nvml, visible=[...]): put the fake pynvml in place and make torch see ``visible``."""

    def _install(nvml: FakeNvml, visible: list[int] | None = None) -> FakeNvml:
        order = visible if visible is not None else range(len(nvml.gpus))
        install_fake_library(monkeypatch, "pynvml", nvml.module, [fake.torch_properties(nvml.gpus[i]) for i in order])
        return nvml

    return _install


def test_reads_the_gpu_torch_uses_by_pci_bus_id_under_renumbering(install):
    # CUDA_VISIBLE_DEVICES=1: torch's cuda:0 is NVML's device 1.
    nvml = install(FakeNvml(two_gpus()), visible=[1])
    sampler = NvidiaSampler(CUDA0)
    sampler.start()
    figures = sampler.sample()
    gpu = nvml.gpus[1]
    assert figures["device_used_bytes"] == gpu.used == 7 * GiB + 123
    assert figures["device_total_bytes"] == 40 * GiB
    assert figures["device_reserved_bytes"] == 300 * MiB
    assert figures["process_used_bytes"] == 3 * GiB + 4096
    assert figures["gpu_util_percent"] == gpu.gpu_util
    assert figures["memory_util_percent"] == gpu.memory_util
    assert figures["power_watts"] == pytest.approx(gpu.power_mw / 1000)
    assert figures["temperature_c"] == gpu.temperature_c
    summary = sampler.summary()
    assert summary["device"]["pci_bus_id"] == "00000000:41:00.0"
    assert summary["device"]["matched_by"] == "pci_bus_id"
    assert summary["process_memory"] == "reported"
    assert nvml.calls.get("nvmlDeviceGetHandleByIndex", 0) == 0  # never by index
    sampler.stop()
    assert nvml.refcount == 0


def test_figures_follow_the_device_between_samples(install):
    nvml = install(FakeNvml(two_gpus()), visible=[1])
    sampler = NvidiaSampler(CUDA0)
    sampler.start()
    first = sampler.sample()
    nvml.gpus[1].used += 2 * GiB
    nvml.gpus[1].processes[1].used += 2 * GiB
    second = sampler.sample()
    sampler.stop()
    assert second["device_used_bytes"] - first["device_used_bytes"] == 2 * GiB
    assert second["process_used_bytes"] - first["process_used_bytes"] == 2 * GiB


def test_falls_back_to_uuid_when_the_bus_id_is_unknown(install, monkeypatch):
    nvml = install(FakeNvml(two_gpus()))
    props = fake.torch_properties(nvml.gpus[1])
    props.pci_bus_id = 0x99  # a bus id NVML does not know
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    sampler = NvidiaSampler(CUDA0)
    sampler.start()
    assert sampler.summary()["device"]["matched_by"] == "uuid"
    assert sampler.sample()["device_total_bytes"] == 40 * GiB
    sampler.stop()


def test_no_matching_gpu_is_unavailable_and_releases_nvml(install, monkeypatch):
    nvml = install(FakeNvml(two_gpus()))
    props = fake.torch_properties(FakeGpu(pci_bus_id="00000000:99:00.0", uuid="GPU-ffff"))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    message = check_unavailable(NvidiaSampler, CUDA0)
    assert "00000000:99:00.0" in message and "GPU-ffff" in message
    assert nvml.refcount == 0


def test_memory_v2_missing_falls_back_to_v1(install):
    gpus = two_gpus()
    gpus[1].memory_v2 = False
    nvml = install(FakeNvml(gpus), visible=[1])
    sampler = NvidiaSampler(CUDA0)
    sampler.start()
    figures = sampler.sample()
    figures2 = sampler.sample()
    sampler.stop()
    # v1 "used" includes the reserved memory; there is no separate reserved figure
    assert figures["device_used_bytes"] == 7 * GiB + 123 + 300 * MiB == figures2["device_used_bytes"]
    assert "device_reserved_bytes" not in figures
    assert sampler.summary()["memory_api"] == "nvmlDeviceGetMemoryInfo v1"
    # v2 was tried once (at start), then v1 only
    assert nvml.calls["nvmlDeviceGetMemoryInfo"] == 1 + 3


@pytest.mark.parametrize(
    "processes, reason",
    [
        ([FakeProcess(4242, 1 * GiB)], "not in NVML's process list"),
        ([FakeProcess(ME, None)], "usedGpuMemory is N/A"),
    ],
)
def test_process_memory_unavailable_is_absent_not_zero(install, processes, reason):
    gpus = two_gpus()
    gpus[1].processes = processes
    install(FakeNvml(gpus), visible=[1])
    sampler = NvidiaSampler(CUDA0)
    sampler.start()
    figures = sampler.sample()
    sampler.stop()
    assert "process_used_bytes" not in figures
    assert figures["device_used_bytes"] == 7 * GiB + 123  # the device figure is kept
    summary = sampler.summary()
    assert summary["process_memory"].startswith("unavailable") and reason in summary["process_memory"]
    assert summary["process_samples"] == 0


def test_process_listing_not_supported_is_reported(install):
    gpus = two_gpus()
    gpus[1].process_api = fake.ERROR_CODES["NVML_ERROR_NOT_SUPPORTED"]
    install(FakeNvml(gpus), visible=[1])
    sampler = NvidiaSampler(CUDA0)
    sampler.start()
    assert "process_used_bytes" not in sampler.sample()
    sampler.stop()
    assert "NVMLError_NotSupported" in sampler.summary()["process_memory"]


def test_library_mismatch_uses_the_v2_process_call(install):
    gpus = two_gpus()
    gpus[1].process_api = "v2"  # the unversioned call raises NVMLLibraryMismatchError
    nvml = install(FakeNvml(gpus), visible=[1])
    sampler = NvidiaSampler(CUDA0)
    sampler.start()
    first, second = sampler.sample(), sampler.sample()
    sampler.stop()
    assert first["process_used_bytes"] == second["process_used_bytes"] == 3 * GiB + 4096
    assert sampler.summary()["process_api"] == "nvmlDeviceGetComputeRunningProcesses_v2"
    assert nvml.calls["nvmlDeviceGetComputeRunningProcesses"] == 1  # not retried every sample


def test_unsupported_optional_figure_is_dropped_and_listed(install):
    gpus = two_gpus()
    gpus[1].failures["nvmlDeviceGetPowerUsage"] = fake.ERROR_CODES["NVML_ERROR_NOT_SUPPORTED"]
    nvml = install(FakeNvml(gpus), visible=[1])
    sampler = NvidiaSampler(CUDA0)
    sampler.start()
    figures = [sampler.sample() for _ in range(3)]
    sampler.stop()
    assert all("power_watts" not in f and "temperature_c" in f for f in figures)
    assert sampler.summary()["unsupported"] == {"power": "NVMLError_NotSupported: Not Supported"}
    assert nvml.calls["nvmlDeviceGetPowerUsage"] == 1


def test_errors_while_sampling_are_counted_by_the_sampling_thread(install, tmp_path):
    nvml = install(FakeNvml(two_gpus()), visible=[1])
    sampler = NvidiaSampler(CUDA0)
    sampler.start()
    thread = SamplingThread({"nvidia": sampler}, interval=3600, timeline=tmp_path / "timeline.jsonl")
    thread.start()  # one sample at start
    nvml.gpus[1].failures["nvmlDeviceGetMemoryInfo"] = fake.ERROR_CODES["NVML_ERROR_GPU_IS_LOST"]
    thread.sample_all()
    thread.sample_all()
    del nvml.gpus[1].failures["nvmlDeviceGetMemoryInfo"]
    thread.stop()  # one last sample, then sampler.stop()
    summary = thread.summary()["nvidia"]
    assert summary["samples"] == 2 and summary["errors"] == 2
    assert summary["last_error"] == "NVMLError_GpuIsLost: GPU is lost"
    lines = [json.loads(x) for x in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(line["figures"]["device_used_bytes"] == 7 * GiB + 123 for line in lines)
    assert summary["process_memory"] == "reported"  # the sampler's own summary is merged in
    assert nvml.refcount == 0


@pytest.mark.parametrize(
    "code, words",
    [
        (fake.ERROR_CODES["NVML_ERROR_LIBRARY_NOT_FOUND"], "libnvidia-ml.so.1"),
        (fake.ERROR_CODES["NVML_ERROR_DRIVER_NOT_LOADED"], "kernel driver is not loaded"),
        (fake.ERROR_CODES["NVML_ERROR_NO_PERMISSION"], "no permission"),
        (fake.ERROR_CODES["NVML_ERROR_UNKNOWN"], "nvmlInit failed"),
    ],
)
def test_no_driver_is_unavailable_with_one_clear_line(install, code, words):
    nvml = install(FakeNvml(two_gpus(), init_error=code))
    message = check_unavailable(NvidiaSampler, CUDA0)
    assert words in message
    assert nvml.refcount == 0


def test_cpu_run_is_unavailable_without_touching_nvml(install):
    nvml = install(FakeNvml(two_gpus()))
    message = check_unavailable(NvidiaSampler, torch.device("cpu"))
    assert "this run is on cpu" in message
    assert nvml.calls == {}


def test_missing_bindings_are_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    assert "pip install nvidia-ml-py" in check_unavailable(NvidiaSampler, CUDA0)


def test_torch_cannot_see_the_device_is_unavailable(install, monkeypatch):
    nvml = install(FakeNvml(two_gpus()), visible=[1])  # only cuda:0 exists
    message = check_unavailable(NvidiaSampler, torch.device("cuda", 1))
    assert "torch cannot see cuda:1" in message
    assert nvml.refcount == 0


def test_passes_the_sampler_conformance_suite(install):
    nvml = install(FakeNvml(two_gpus()), visible=[1])
    report = check_sampler(NvidiaSampler, CUDA0, name="nvidia")
    assert report.scope == "device"
    assert {"device_used_bytes", "device_total_bytes", "process_used_bytes", "power_watts"} <= report.figures
    assert nvml.refcount == 0 and nvml.init_calls == nvml.shutdown_calls == 2


def test_bus_id_and_uuid_formats():
    props = fake.torch_properties(FakeGpu(pci_bus_id="00000001:a3:1f.0", uuid="GPU-1234"))
    assert PciAddress.of(props).bus_id(8) == "00000001:A3:1F.0"  # NVML's form
    assert nvmod.nvml_uuid(props) == "GPU-1234"  # torch prints the UUID without the prefix
    props.uuid = "MIG-5678"
    assert nvmod.nvml_uuid(props) == "MIG-5678"
