"""Step-time cost of memory sampling: the `process` sampler at 0.1 s against no sampler.

Both sides run through ``prunekit.core.run.runner.run`` on the same job (LeNet-5 on
digits, pruner none), interleaved, medians of mean step time. Goal: ratio <= 1.01.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from _quick import parse_args

from prunekit.core.config.settings import RunConfig
from prunekit.core.run.runner import run


def step_time(samplers: list[str], interval: float, workdir: Path, epochs: int) -> tuple[float, int]:
    config = RunConfig(
        pruner="none",
        epochs=epochs,
        samplers=samplers,
        sample_interval=interval,
        device="cpu",
        out=str(workdir / f"run-{time.time_ns()}"),
        quiet=True,
    )
    summary = run(config)[1]
    samples = sum(s["samples"] for s in summary["samplers"].values())
    return summary["mean_step_time_s"], samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parse_args(parser, quick={"repeats": 3, "epochs": 3})
    with_sampler, without, samples = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        step_time([], args.interval, Path(tmp), 1)  # warm-up
        for _ in range(args.repeats):
            t, n = step_time(["process"], args.interval, Path(tmp), args.epochs)
            with_sampler.append(t)
            samples.append(n)
            without.append(step_time([], args.interval, Path(tmp), args.epochs)[0])
    a, b = statistics.median(with_sampler), statistics.median(without)
    print(
        json.dumps(
            {
                "job": f"lenet5/digits, pruner none, {args.epochs} epochs",
                "interval_s": args.interval,
                "samples_per_run_median": statistics.median(samples),
                "step_ms_with_process_sampler": round(1000 * a, 4),
                "step_ms_without_sampler": round(1000 * b, 4),
                "ratio": round(a / b, 4),
                "goal": "<= 1.01",
            }
        )
    )


if __name__ == "__main__":
    main()
