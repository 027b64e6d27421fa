"""Framework overhead and magnitude-pruning overhead, each against a baseline in the same process.

1. prunekit's training step (``prunekit.core.run.runner.run`` with pruner ``none``)
   against a plain hand-written PyTorch loop on the same model, data and optimizer:
   LeNet-5 on digits and ResNet-18 on synthetic 32x32 batches. Throughput ratio =
   plain step time / prunekit step time (goal >= 0.95).
2. ``magnitude`` against ``none`` through the same runner: amortised step-time ratio
   with mask updates every 50 steps (gradient masking and enforcement every step).

Repetitions are interleaved (A, B, A, B, ...) so drift hits both sides; medians reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _quick import parse_args

from prunekit.builtin.datasets import digits, synthetic
from prunekit.builtin.models import lenet5, resnet18
from prunekit.core.config.settings import RunConfig
from prunekit.core.run.runner import run
from prunekit.core.train.optim import parameter_groups

CASES = {
    "lenet5_digits": dict(model="lenet5", dataset="digits", batch_size=32, epochs=3, dataset_opts={}),
    "resnet18_synthetic32": dict(
        model="resnet18",
        dataset="synthetic",
        batch_size=32,
        epochs=1,
        dataset_opts={"train_size": 32 * 50, "test_size": 32},
    ),
}


def plain_loop(case: dict, seed: int) -> float:
    """Seconds per step of a hand-written loop: same model, data, optimizer, batch order."""
    torch.manual_seed(seed)
    if case["dataset"] == "digits":
        splits = digits(None, False, seed)
        model = lenet5(10, 1, 32)
        wd = 1e-4
    else:
        splits = synthetic(None, False, seed, **case["dataset_opts"])
        model = resnet18(10, 3, 32)
        wd = 5e-4
    inputs, labels = splits.train.tensors
    opt = torch.optim.AdamW(parameter_groups(model, wd), lr=1e-3, fused=True)  # as prunekit's adamw on CPU
    generator = torch.Generator().manual_seed(seed)
    bs = case["batch_size"]
    steps = 0
    start = time.perf_counter()
    for _ in range(case["epochs"]):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        for i in range(0, len(labels), bs):
            index = order[i : i + bs]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(inputs[index]), labels[index])
            loss.backward()
            opt.step()
            steps += 1
    return (time.perf_counter() - start) / steps


def prunekit_step(case: dict, pruner: str, seed: int, workdir: Path) -> float:
    config = RunConfig(
        model=case["model"],
        dataset=case["dataset"],
        dataset_opts=dict(case["dataset_opts"]),
        optimizer="adamw",
        pruner=pruner,
        epochs=case["epochs"],
        batch_size=case["batch_size"],
        seed=seed,
        device="cpu",
        out=str(workdir / f"{case['model']}-{pruner}-{time.time_ns()}"),
        quiet=True,
        frequency=50,
        sparsity=0.7,
    )
    summary = run(config, warn=lambda message: None)[1]
    return summary["mean_step_time_s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parse_args(parser, quick={"repeats": 1, "cases": ["lenet5_digits"]})
    results = {"threads": torch.get_num_threads(), "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            case = CASES[name]
            plain, none, magnitude = [], [], []
            prunekit_step(case, "none", 0, Path(tmp))  # warm-up: imports, allocator, timm
            for r in range(args.repeats):
                plain.append(plain_loop(case, r))
                none.append(prunekit_step(case, "none", r, Path(tmp)))
                magnitude.append(prunekit_step(case, "magnitude", r, Path(tmp)))
            p, n, m = (statistics.median(x) for x in (plain, none, magnitude))
            results[name] = {
                "plain_step_ms": round(1000 * p, 3),
                "prunekit_none_step_ms": round(1000 * n, 3),
                "prunekit_magnitude_step_ms": round(1000 * m, 3),
                "framework_throughput_ratio": round(p / n, 4),
                "framework_goal": ">= 0.95",
                "magnitude_over_none_step_ratio": round(m / n, 4),
            }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
