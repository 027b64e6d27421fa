"""Cost of RigL's and SET's topology updates against an ordinary training step: ResNet-18, CIFAR shapes, CPU.

A ResNet-18 (CIFAR stem, 10 classes, 3x32x32), AdamW, batch 32 of synthetic data,
90% sparsity with ERK, from prunekit-dst. An ordinary step (forward, backward,
gradient masking, optimizer step, enforcement) is timed, then an update step of each
pruner: RigL's ``before_step`` also keeps |dense gradient| (fp32, every prunable
weight) until ``update_masks`` drops and grows in every layer; SET draws random
scores instead. Figures: median seconds, the ratio of an update step to an ordinary
step, and the bytes held only during the update (the ledger's ``pruner_transient``;
the dense gradient itself is the ``.grad`` every backward pass already computes in
prunekit, since masks keep dense storage). Prints JSON.

    python benchmarks/bench_dst_update.py [--rounds 5] [--model resnet18|lenet5] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from _quick import parse_args

from prunekit.api import Schedule, TrainingPlan
from prunekit.testing import parameter_groups, prunable_targets
from prunekit_dst import rigl, set_


def _model(quick: bool):
    if quick:
        from prunekit.testing import lenet5

        return lenet5(10, 3, 32)
    from prunekit.builtin.models import resnet18

    return resnet18(10, 3, 32)


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(factory, rounds: int, quick: bool) -> dict:
    torch.manual_seed(0)
    model = _model(quick)
    targets = prunable_targets(model)
    pruner = factory(targets, scope="erk", delta_t=2, alpha=0.3, end_fraction=1.0, seed=0)
    opt = torch.optim.AdamW(parameter_groups(model, 5e-4), lr=1e-3)
    pruner.bind(opt)
    pruner.start(TrainingPlan(10_000, 10_000, Schedule.constant(0.9)))
    pruner.update_masks(0.9, 0)
    pruner.enforce()
    g = torch.Generator().manual_seed(0)
    inputs, labels = torch.randn(32, 3, 32, 32, generator=g), torch.randint(0, 10, (32,), generator=g)
    times: dict[str, list[float]] = {"step": [], "before_step": [], "before_step_update": [], "update_masks": []}
    for step in range(1, 2 * rounds + 3):  # odd steps ordinary, even steps update; the first two untimed
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), labels).backward()
        before = _timed(pruner.before_step, step)
        opt.step()
        update = _timed(pruner.update_masks, 0.9, step) if pruner.is_update_step(step) else 0.0
        pruner.enforce()
        total = time.perf_counter() - start - update
        if step <= 2:
            continue
        if step % 2:
            times["step"].append(total)
            times["before_step"].append(before)
        else:
            times["before_step_update"].append(before)
            times["update_masks"].append(update)
    med = {k: statistics.median(v) for k, v in times.items()}
    extra = med["before_step_update"] - med["before_step"] + med["update_masks"]
    prunable = sum(t.numel() for t in targets)
    transient = sum(pruner.transient_bytes().values())
    return {
        "ordinary_step_s": med["step"],
        "before_step_s": med["before_step"],
        "before_step_on_update_s": med["before_step_update"],
        "update_masks_s": med["update_masks"],
        "update_extra_over_ordinary_step": extra / med["step"],
        "transient_bytes": transient,
        "transient_bytes_per_prunable_weight": transient / prunable,
        "kept_bytes_per_prunable_weight": sum(t.numel() * t.element_size() for t in pruner.state_tensors().values()) / prunable,
        "prunable_weights": prunable,
        "topology_updates": pruner.topology_updates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed ordinary and update steps each")
    parser.add_argument("--model", choices=("resnet18", "lenet5"), default="resnet18", help="resnet18 (CIFAR stem) or lenet5")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parse_args(parser, quick={"rounds": 3, "model": "lenet5"})
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds, quick = args.rounds, args.model == "lenet5"
    result = {
        "benchmark": "dst_update",
        "model": "lenet5" if quick else "resnet18-cifar",
        "sparsity": 0.9,
        "distribution": "erk",
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "rigl": measure(rigl, rounds, args.quick),
        "set": measure(set_, rounds, args.quick),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
