import json
import time

import pytest
import torch

from prunekit.builtin.samplers import ProcessSampler, TorchAllocatorSampler
from prunekit.core.measure.sampling import SamplerUnavailable, SamplingThread


class CountingSampler:
    scope = "process"

    def __init__(self, fail_every=0):
        self.n = 0
        self.fail_every = fail_every
        self.phases = []
        self.stopped = False

    def start(self):
        pass

    def sample(self):
        self.n += 1
        if self.fail_every and self.n % self.fail_every == 0:
            raise RuntimeError("device went away")
        return {"used_bytes": 1000 * self.n, "util_percent": 50.0}

    def phase_changed(self, phase):
        self.phases.append(phase)

    def stop(self):
        self.stopped = True


def test_thread_writes_timeline_and_summary(tmp_path):
    sampler = CountingSampler()
    thread = SamplingThread({"count": sampler}, 0.01, tmp_path / "timeline.jsonl")
    thread.start()
    thread.set_phase("train")
    thread.step = 7
    time.sleep(0.1)
    thread.set_phase("eval")
    thread.stop()
    lines = [json.loads(line) for line in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    assert len(lines) == sampler.n >= 3
    assert lines[0]["phase"] == "setup" and lines[-1]["phase"] == "eval" and lines[-1]["step"] == 7
    assert [r["figures"]["used_bytes"] for r in lines] == [1000.0 * (i + 1) for i in range(len(lines))]
    assert all(a["monotonic"] <= b["monotonic"] for a, b in zip(lines, lines[1:]))
    summary = thread.summary()["count"]
    assert summary["samples"] == sampler.n and summary["errors"] == 0
    assert summary["figures"]["used_bytes"]["peak"] == 1000.0 * sampler.n
    assert summary["figures"]["used_bytes"]["mean"] == pytest.approx(1000.0 * (sampler.n + 1) / 2)
    assert sampler.phases == ["train", "eval"] and sampler.stopped


def test_errors_are_counted_not_swallowed(tmp_path):
    sampler = CountingSampler(fail_every=2)
    thread = SamplingThread({"flaky": sampler}, 0.01, tmp_path / "t.jsonl")
    thread.start()
    time.sleep(0.1)
    thread.stop()
    summary = thread.summary()["flaky"]
    assert summary["errors"] == sampler.n // 2 > 0
    assert summary["samples"] == sampler.n - sampler.n // 2
    assert summary["last_error"] == "RuntimeError: device went away"


def test_process_sampler_reads_rss():
    sampler = ProcessSampler(torch.device("cpu"))
    sampler.start()
    before = sampler.sample()["rss_bytes"]
    block = torch.ones(64 * 1024 * 1024, dtype=torch.uint8)  # touch 64 MiB
    after = sampler.sample()["rss_bytes"]
    assert after - before > 32 * 1024 * 1024
    assert sampler.summary()["peak_rss_bytes"] >= after * 0.9
    del block


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_torch_sampler_refuses_cpu():
    with pytest.raises(SamplerUnavailable, match="this run is on cpu"):
        TorchAllocatorSampler(torch.device("cpu")).start()
