"""Step-time cost of experiment trackers: none, a stalled tracker, and tensorboard.

All sides run through ``prunekit.core.run.runner.run`` on the same job (LeNet-5 on
digits, magnitude to 70%), interleaved, medians of mean step time. The stalled
tracker sleeps ``--stall`` seconds in every call, so its buffer backs up: the
training thread must not notice (goal: ratio <= 1.02); the end of the run then
waits at most its ``finish_timeout_s``, reported separately as ``end_wait_s``.
tensorboard does real work on its own thread (goal: ratio <= 1.05).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import types
from pathlib import Path

from _quick import parse_args

from prunekit import hookimpl
from prunekit.core.config.settings import RunConfig
from prunekit.core.plugins.loading import build
from prunekit.core.run.runner import run


class Stalled:
    memory_interval_s = 0.1

    def __init__(self, stall=0.5):
        self.stall = stall

    def start(self, run):
        time.sleep(self.stall)

    def log_epoch(self, record):
        time.sleep(self.stall)

    def log_memory(self, sample):
        time.sleep(self.stall)

    def finish(self, end):
        time.sleep(self.stall)


def plugins(stall: float):
    module = types.ModuleType("bench_stalled")
    module.register_trackers = hookimpl(lambda register: register("stalled", lambda: Stalled(stall)))
    return build({"bench-stalled": module})


def measure(loaded, trackers, opts, workdir: Path, epochs: int) -> tuple[float, float]:
    config = RunConfig(
        epochs=epochs,
        device="cpu",
        trackers=trackers,
        tracker_opts=opts,
        sample_interval=0.1,
        out=str(workdir / f"run-{time.time_ns()}"),
        quiet=True,
    )
    started = time.perf_counter()
    summary = run(config, plugins=loaded, warn=lambda message: None)[1]
    end_wait = time.perf_counter() - started - summary["wall_time_s"]
    return summary["mean_step_time_s"], end_wait


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--stall", type=float, default=0.5)
    args = parse_args(parser, quick={"repeats": 2, "epochs": 2})
    loaded = plugins(args.stall)
    sides = {"none": ([], {}), "stalled": (["stalled"], {"stalled": {"finish_timeout_s": 2.0}})}
    if "tensorboard" in loaded.registry.names("trackers"):
        sides["tensorboard"] = (["tensorboard"], {"tensorboard": {"memory_interval_s": 0.1}})
    steps: dict[str, list[float]] = {k: [] for k in sides}
    waits: dict[str, list[float]] = {k: [] for k in sides}
    with tempfile.TemporaryDirectory() as tmp:
        measure(loaded, [], {}, Path(tmp), 1)  # warm-up
        for _ in range(args.repeats):
            for name, (trackers, opts) in sides.items():
                step, wait = measure(loaded, trackers, opts, Path(tmp), args.epochs)
                steps[name].append(step)
                waits[name].append(wait)
    base = statistics.median(steps["none"])
    result = {
        "job": f"lenet5/digits, magnitude 70%, {args.epochs} epochs",
        "stall_s": args.stall,
        "step_ms_without_trackers": round(1000 * base, 4),
    }
    for name in sides:
        if name != "none":
            result[f"step_ms_{name}"] = round(1000 * statistics.median(steps[name]), 4)
            result[f"ratio_{name}"] = round(statistics.median(steps[name]) / base, 4)
        result[f"end_wait_s_{name}"] = round(statistics.median(waits[name]), 3)
    result["goal"] = "ratio_stalled <= 1.02, ratio_tensorboard <= 1.05"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
