"""Per-step overhead of the ``movement`` pruner against ``none``: ResNet-18, CIFAR shapes, CPU.

Two identical ResNet-18s (CIFAR stem, 10 classes, 3x32x32), AdamW, batch 32 of
synthetic data. The movement model has its masks set (70% sparsity) before
timing, so each step pays what a pruning run pays: the masked forward through
the gate, the score update ``S -= lr * grad * W`` and the gradient masking.
Steps of the two models are interleaved (ABBA order) in one process so that
drift in machine load cancels; the figure is the ratio of median step times.
A scheduled mask update (exact global threshold over all 11M scores) is timed
separately, since it runs only every ``frequency`` steps. Prints JSON.

    python benchmarks/bench_movement_overhead.py [--rounds 20] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F
from _quick import parse_args

from prunekit.builtin.models import resnet18
from prunekit.core.sparsity.pruner import Pruner
from prunekit.core.sparsity.targets import prunable_targets
from prunekit.core.train.optim import parameter_groups
from prunekit_movement import movement


def _step(model, optimizer, pruner, inputs, labels, step: int) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(inputs), labels).backward()
    pruner.before_step(step)
    optimizer.step()
    pruner.enforce()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed steps per pruner")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per pruner first")
    parser.add_argument("--updates", type=int, default=3, help="timed mask updates")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parse_args(parser, quick={"rounds": 4, "updates": 1})
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    dense = resnet18(10, 3, 32)
    pruned = copy.deepcopy(dense)
    runs = {}
    for name, model in (("none", dense), ("movement", pruned)):
        targets = prunable_targets(model)
        pruner = Pruner(targets) if name == "none" else movement(targets)  # before the optimizer, as the core does
        optimizer = torch.optim.AdamW(parameter_groups(model, 5e-4), lr=1e-3)
        pruner.bind(optimizer)
        model.train()
        runs[name] = (model, optimizer, pruner, targets)

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(32, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (32,), generator=generator)

    step = 0
    for _ in range(args.warmup):
        step += 1
        for name in runs:
            model, optimizer, pruner, _ = runs[name]
            _step(model, optimizer, pruner, inputs, labels, step)
    pruner = runs["movement"][2]
    update_seconds = []
    for _ in range(args.updates):
        start = time.perf_counter()
        pruner.update_masks(0.7, step)
        update_seconds.append(time.perf_counter() - start)

    times: dict[str, list[float]] = {"none": [], "movement": []}
    for r in range(args.rounds):
        step += 1
        order = ("none", "movement") if r % 2 == 0 else ("movement", "none")
        for name in order:
            model, optimizer, pruner, _ = runs[name]
            times[name].append(_step(model, optimizer, pruner, inputs, labels, step))

    targets = runs["movement"][3]
    zeros = sum(int((t.weight == 0).sum()) for t in targets)
    prunable = sum(t.numel() for t in targets)
    median = {k: statistics.median(v) for k, v in times.items()}
    paired = [m / n for m, n in zip(times["movement"], times["none"])]
    print(
        json.dumps(
            {
                "benchmark": "movement_overhead",
                "model": "resnet18 (CIFAR stem, 10 classes)",
                "input": [32, 3, 32, 32],
                "device": "cpu",
                "threads": torch.get_num_threads(),
                "optimizer": "adamw",
                "rounds": args.rounds,
                "sparsity_during_timing": round(zeros / prunable, 6),
                "prunable_weights": prunable,
                "median_step_s": {k: round(v, 5) for k, v in median.items()},
                "ratio_movement_over_none": round(median["movement"] / median["none"], 4),
                "median_paired_ratio": round(statistics.median(paired), 4),
                "mask_update_s": round(statistics.median(update_seconds), 5),
                "mask_update_over_none_step": round(statistics.median(update_seconds) / median["none"], 4),
                "step_times_s": {k: [round(t, 5) for t in v] for k, v in times.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
