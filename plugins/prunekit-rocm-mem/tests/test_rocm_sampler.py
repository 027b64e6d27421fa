"""The rocm sampler against prunekit.testing.fake_amdsmi (no GPU needed)."""

from __future__ import annotations

import json
import os
import sys

import fake_amdsmi as fake
import pytest
import torch
from fake_amdsmi import STATUS, FakeAmdGpu, FakeAmdProcess, FakeAmdSmi, GiB, MiB

from prunekit.api import PciAddress
from prunekit.testing import SamplingThread
from prunekit.testing.devices import install_fake_library
from prunekit.testing.sampler_conformance import check_sampler, check_unavailable
from prunekit_rocm_mem import RocmSampler

CUDA0 = torch.device("cuda", 0)
ME = os.getpid()


def two_gpus() -> list[FakeAmdGpu]:
    return [
        FakeAmdGpu(bdf="0000:03:00.0", vram_total=64 * GiB, vram_used=2 * GiB, processes=[FakeAmdProcess(4242, 1 * GiB)]),
        FakeAmdGpu(
            bdf="0000:c3:00.0",
            vram_total=192 * GiB,
            vram_used=9 * GiB + 5 * MiB + 17,
            processes=[FakeAmdProcess(4242, 2 * GiB), FakeAmdProcess(ME, 5 * GiB + 4096, gtt=8 * MiB)],
        ),
    ]


@pytest.fixture
def install(monkeypatch):
    """install(smi, visible=[...]): put the fake amdsmi in place and make torch see ``visible``."""

    def _install(smi: FakeAmdSmi, visible: list[int] | None = None) -> FakeAmdSmi:
        order = visible if visible is not None else range(len(smi.gpus))
        install_fake_library(monkeypatch, "amdsmi", smi.module, [fake.torch_properties(smi.gpus[i]) for i in order])
        return smi

    return _install


@pytest.mark.parametrize("api", ["6.1.2", "6.0"])
def test_reads_the_gpu_torch_uses_by_bdf_with_both_process_apis(install, api):
    # HIP_VISIBLE_DEVICES=1: torch's cuda:0 is amdsmi's second GPU.
    smi = install(FakeAmdSmi(two_gpus(), api=api), visible=[1])
    sampler = RocmSampler(CUDA0)
    sampler.start()
    figures = sampler.sample()
    sampler.stop()
    assert figures["device_used_bytes"] == 9 * GiB + 5 * MiB + 17  # exact bytes, not MiB
    assert figures["device_total_bytes"] == 192 * GiB
    assert figures["process_used_bytes"] == 5 * GiB + 4096  # VRAM only, not GTT
    assert figures["gfx_activity_percent"] == 41 and figures["umc_activity_percent"] == 9
    assert "mm_activity_percent" not in figures  # amdsmi said "N/A"
    assert figures["power_watts"] == 215
    assert figures["temperature_c"] == 61  # hotspot preferred over edge
    summary = sampler.summary()
    assert summary["device"]["bdf"] == "0000:c3:00.0"
    assert summary["process_memory"] == "reported"
    assert summary["temperature_sensor"] == "HOTSPOT"
    expected_api = "dicts" if api == "6.1.2" else "amdsmi_get_gpu_process_info"
    assert expected_api in summary["process_api"]
    assert smi.refcount == 0
    assert ("amdsmi_get_gpu_process_info" in smi.calls) == (api == "6.0")


def test_vram_usage_fallback_converts_mib_to_bytes(install):
    gpus = two_gpus()
    gpus[1].memory_usage_api = False
    install(FakeAmdSmi(gpus), visible=[1])
    sampler = RocmSampler(CUDA0)
    sampler.start()
    figures = sampler.sample()
    sampler.stop()
    # amdsmi_get_gpu_vram_usage reports whole MiB: 9 GiB + 5 MiB + 17 B -> 9221 MiB
    assert figures["device_used_bytes"] == (9 * 1024 + 5) * MiB
    assert figures["device_total_bytes"] == 192 * 1024 * MiB
    assert "MiB" in sampler.summary()["memory_api"]


def test_figures_follow_the_device_between_samples(install):
    smi = install(FakeAmdSmi(two_gpus()), visible=[1])
    sampler = RocmSampler(CUDA0)
    sampler.start()
    first = sampler.sample()
    smi.gpus[1].vram_used += 3 * GiB
    smi.gpus[1].processes[1].vram += 3 * GiB
    second = sampler.sample()
    sampler.stop()
    assert second["device_used_bytes"] - first["device_used_bytes"] == 3 * GiB
    assert second["process_used_bytes"] - first["process_used_bytes"] == 3 * GiB


@pytest.mark.parametrize("api", ["6.1.2", "6.0"])
def test_own_pid_missing_is_absent_not_zero(install, api):
    gpus = two_gpus()
    gpus[1].processes = [FakeAmdProcess(4242, 2 * GiB)]
    install(FakeAmdSmi(gpus, api=api), visible=[1])
    sampler = RocmSampler(CUDA0)
    sampler.start()
    figures = sampler.sample()
    sampler.stop()
    assert "process_used_bytes" not in figures and figures["device_used_bytes"] > 0
    assert "not in amdsmi's process list" in sampler.summary()["process_memory"]


def test_process_list_not_supported_is_reported(install):
    gpus = two_gpus()
    gpus[1].failures["amdsmi_get_gpu_process_list"] = STATUS["AMDSMI_STATUS_NOT_SUPPORTED"]
    install(FakeAmdSmi(gpus), visible=[1])
    sampler = RocmSampler(CUDA0)
    sampler.start()
    assert "process_used_bytes" not in sampler.sample()
    sampler.stop()
    assert "Feature not supported" in sampler.summary()["process_memory"]


def test_unsupported_figures_are_dropped_and_listed(install):
    gpus = two_gpus()
    gpus[1].temperatures = {0: 50}  # edge only (hotspot unsupported)
    gpus[1].failures["amdsmi_get_power_info"] = STATUS["AMDSMI_STATUS_NOT_SUPPORTED"]
    smi = install(FakeAmdSmi(gpus, api="6.0"), visible=[1])
    sampler = RocmSampler(CUDA0)
    sampler.start()
    figures = [sampler.sample() for _ in range(3)]
    sampler.stop()
    assert all(f["temperature_c"] == 50 and "power_watts" not in f for f in figures)
    assert sampler.summary()["temperature_sensor"] == "EDGE"
    assert list(sampler.summary()["unsupported"]) == ["power"]
    assert smi.calls["amdsmi_get_power_info"] == 1


def test_power_falls_back_to_current_socket_power_on_rocm_6_0(install):
    install(FakeAmdSmi(two_gpus(), api="6.0"), visible=[1])  # no socket_power field
    sampler = RocmSampler(CUDA0)
    sampler.start()
    assert sampler.sample()["power_watts"] == 215
    sampler.stop()


def test_errors_while_sampling_are_counted_by_the_sampling_thread(install, tmp_path):
    smi = install(FakeAmdSmi(two_gpus()), visible=[1])
    sampler = RocmSampler(CUDA0)
    sampler.start()
    thread = SamplingThread({"rocm": sampler}, interval=3600, timeline=tmp_path / "timeline.jsonl")
    thread.start()
    smi.gpus[1].failures["amdsmi_get_gpu_memory_usage"] = STATUS["AMDSMI_STATUS_DRIVER_NOT_LOADED"]
    thread.sample_all()
    del smi.gpus[1].failures["amdsmi_get_gpu_memory_usage"]
    thread.stop()
    summary = thread.summary()["rocm"]
    assert summary["samples"] == 2 and summary["errors"] == 1
    assert summary["last_error"].startswith("AmdSmiLibraryException: Error code:")
    assert "Driver not loaded" in summary["last_error"]
    lines = [json.loads(x) for x in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    assert [line["figures"]["process_used_bytes"] for line in lines] == [5 * GiB + 4096] * 2
    assert smi.refcount == 0


def test_library_missing_at_import_is_unavailable(capsys):
    with fake.library_missing():
        message = check_unavailable(RocmSampler, CUDA0)
    assert "KeyError" in message and "libamd_smi.so" in message and "amd-smi-lib" in message
    assert capsys.readouterr().out == ""  # the package's own print is not leaked


def test_missing_package_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    assert "needs the amdsmi Python package" in check_unavailable(RocmSampler, CUDA0)


@pytest.mark.parametrize(
    "code, words",
    [
        (STATUS["AMDSMI_STATUS_DRIVER_NOT_LOADED"], "amdgpu kernel driver is not loaded"),
        (STATUS["AMDSMI_STATUS_NO_PERM"], "no permission"),
        (STATUS["AMDSMI_STATUS_INIT_ERROR"], "Initialization error"),
    ],
)
def test_no_driver_is_unavailable_with_one_clear_line(install, code, words):
    smi = install(FakeAmdSmi(two_gpus(), init_error=code))
    assert words in check_unavailable(RocmSampler, CUDA0)
    assert smi.refcount == 0


def test_no_gpu_at_the_torch_bdf_is_unavailable_and_releases_amdsmi(install, monkeypatch):
    smi = install(FakeAmdSmi(two_gpus()))
    props = fake.torch_properties(FakeAmdGpu(bdf="0000:99:00.0"))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    message = check_unavailable(RocmSampler, CUDA0)
    assert "0000:99:00" in message and "0000:03:00.0, 0000:c3:00.0" in message
    assert smi.refcount == 0


def test_cpu_run_is_unavailable_without_touching_amdsmi(install):
    smi = install(FakeAmdSmi(two_gpus()))
    assert "this run is on cpu" in check_unavailable(RocmSampler, torch.device("cpu"))
    assert smi.calls == {}


@pytest.mark.parametrize("api", ["6.1.2", "6.0"])
def test_passes_the_sampler_conformance_suite(install, api):
    smi = install(FakeAmdSmi(two_gpus(), api=api), visible=[1])
    report = check_sampler(RocmSampler, CUDA0, name="rocm")
    assert report.scope == "device"
    assert {"device_used_bytes", "device_total_bytes", "process_used_bytes", "temperature_c"} <= report.figures
    assert smi.refcount == 0 and smi.init_calls == smi.shutdown_calls == 2


def test_amdsmi_bdf_strings_parse_to_the_torch_address():
    assert PciAddress.parse("0000:c3:00.0") == (0, 0xC3, 0)
    assert PciAddress.parse("c3:1f.0") == (0, 0xC3, 0x1F)
    assert PciAddress.parse("0001:03:00.1") == (1, 3, 0)
