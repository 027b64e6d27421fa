"""Training step time of ``torch.compile`` against eager on CPU: LeNet-5 and ResNet-18 (CIFAR shapes).

Two copies of each model (same weights), AdamW, synthetic batches. The compiled
copy is what ``prunekit run --compile`` trains (``torch.compile`` of the forward
module); its first steps (compiling) are timed apart as ``compile_s``. Steps of
the two arms are interleaved (ABBA) in one process so that drift in machine
load cancels; the figure is the ratio of median step times (compiled / eager;
below 1: compile is faster). One torch thread unless ``--threads``. Prints JSON
with the load average before and after.

    python benchmarks/bench_compile.py [--rounds 20] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
from _quick import parse_args

from prunekit.builtin.models import lenet5, resnet18
from prunekit.core.train.optim import parameter_groups

MODELS = {"lenet5": (lenet5, 1, 128), "resnet18": (resnet18, 3, 32)}  # factory, channels, batch


def _step(model: torch.nn.Module, forward: torch.nn.Module, optimizer: torch.optim.Optimizer, x, y) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(forward(x), y).backward()
    optimizer.step()
    return time.perf_counter() - start


def measure(name: str, rounds: int, warmup: int) -> dict:
    factory, channels, batch = MODELS[name]
    torch.manual_seed(0)
    eager = factory(10, channels, 32)
    compiled = copy.deepcopy(eager)
    arms = {}
    for arm, model in (("eager", eager), ("compiled", compiled)):
        forward = torch.compile(model) if arm == "compiled" else model
        arms[arm] = (model, forward, torch.optim.AdamW(parameter_groups(model, 1e-4), lr=1e-3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, channels, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g)
    first = {arm: sum(_step(*arms[arm], x, y) for _ in range(warmup)) for arm in arms}  # compiling happens here
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for r in range(rounds):
        order = ("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")
        for arm in order:
            times[arm].append(_step(*arms[arm], x, y))
    median = {arm: statistics.median(t) for arm, t in times.items()}
    return {
        "batch": batch,
        "input": [channels, 32, 32],
        "median_step_s": median,
        "compiled_over_eager": median["compiled"] / median["eager"],
        "first_steps_s": first,  # the compiled arm's includes compiling
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per arm first (compiling)")
    parser.add_argument("--models", default="lenet5,resnet18")
    parser.add_argument("--threads", type=int, default=1)
    args = parse_args(parser, quick={"rounds": 6, "warmup": 2})
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    results = {name: measure(name, args.rounds, args.warmup) for name in args.models.split(",")}
    print(
        json.dumps(
            {
                "benchmark": "compile",
                "device": "cpu",
                "threads": args.threads,
                "torch": torch.__version__,
                "results": results,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "cpu_count": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
