"""Benchmark 2 (issue 3): training-step overhead of pruner ``state`` against ``none``.

ResNet-18 with CIFAR shapes (timm, CIFAR stem, 10 classes, 3x32x32), batch 32
of fixed synthetic data, CPU, optimizer ``adamwprune`` (or ``--optimizer adamw``),
masks recomputed every 50 steps. Two identical models train side by side in one process, their steps
interleaved one by one (so machine drift hits both alike), in the runner's
step order: forward, loss, backward, ``pruner.before_step``, optimizer step,
[``pruner.update_masks`` every ``frequency`` steps], ``pruner.enforce``.
The ``state`` model is pruned to ``--start`` sparsity before timing starts (so
masks exist, as in the middle of a run) and ramps linearly to ``--end``.

    python benchmarks/bench_state_overhead.py [--steps 200] [--frequency 50] [--threads 1] [--patch FILE]

Prints one JSON object: amortised step-time ratio state/none (goal <= 1.05),
and the time of the pruner's own calls split into per-step masking and mask
updates.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _quick import parse_args


def _make(seed: int, pruner_name: str, optimizer: str = "adamwprune"):
    import torch

    from prunekit.builtin.models import resnet18
    from prunekit.builtin.pruners import none
    from prunekit.core.sparsity.targets import prunable_targets
    from prunekit.core.train.optim import parameter_groups
    from prunekit_adamwprune import adamwprune, state

    torch.manual_seed(seed)
    model = resnet18(10, 3, 32)
    targets = prunable_targets(model)
    pruner = state(targets) if pruner_name == "state" else none(targets)
    if optimizer == "adamwprune":
        factory = adamwprune
    else:
        from prunekit.builtin.optimizers import adamw as factory
    opt = factory(parameter_groups(model, 5e-4), lr=1e-3, weight_decay=5e-4, epochs=1, steps_per_epoch=1)
    pruner.bind(opt)
    return model, pruner, opt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per model (a multiple of --frequency)")
    parser.add_argument("--frequency", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--start", type=float, default=0.5, help="sparsity before timing starts")
    parser.add_argument("--end", type=float, default=0.7, help="sparsity at the last timed update")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--optimizer",
        choices=("adamwprune", "adamw"),
        default="adamwprune",
        help="adamwprune (fused AdamW) or the built-in adamw (torch's default multi-tensor path)",
    )
    parser.add_argument("--patch", help="apply PATCH.install() first (to measure a proposed core change)")
    args = parse_args(parser, quick={"steps": 50, "batch_size": 8})
    if args.patch:
        import importlib.util

        spec = importlib.util.spec_from_file_location("proposed_patch", args.patch)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.install()

    import torch
    from torch import nn

    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    batches = [
        (torch.randn(args.batch_size, 3, 32, 32, generator=gen), torch.randint(0, 10, (args.batch_size,), generator=gen))
        for _ in range(4)
    ]
    arms = {name: _make(args.seed, name, args.optimizer) for name in ("none", "state")}
    updates = args.steps // args.frequency
    times: dict[str, list[float]] = {name: [] for name in arms}
    pruner_time = {"per_step_masking_s": 0.0, "mask_updates_s": 0.0, "mask_update_count": 0}

    def step(name: str, i: int, timed: bool) -> None:
        model, pruner, opt = arms[name]
        x, y = batches[i % len(batches)]
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        t0 = time.perf_counter()
        pruner.before_step(i)
        t1 = time.perf_counter()
        opt.step()
        t2 = time.perf_counter()
        if timed and i % args.frequency == 0:
            pruner.update_masks(args.start + (args.end - args.start) * (i // args.frequency) / updates, i)
        t3 = time.perf_counter()
        pruner.enforce()
        end = time.perf_counter()
        if timed:
            times[name].append(end - start)
            if name == "state":
                pruner_time["per_step_masking_s"] += (t1 - t0) + (end - t3)
                if t3 > t2 and i % args.frequency == 0:
                    pruner_time["mask_updates_s"] += t3 - t2
                    pruner_time["mask_update_count"] += 1

    for i in range(args.warmup_steps):
        for name in arms:
            step(name, i, timed=False)
    arms["state"][1].update_masks(args.start, 0)  # masks exist, as mid-run
    for i in range(1, args.steps + 1):
        order = ("none", "state") if i % 2 else ("state", "none")
        for name in order:
            step(name, i, timed=True)

    total = {name: sum(ts) for name, ts in times.items()}
    ratio = total["state"] / total["none"]
    model, pruner, _ = arms["state"]
    zeros = sum(int((t.weight == 0).sum()) for t in pruner.targets)
    prunable = sum(t.numel() for t in pruner.targets)
    print(
        json.dumps(
            {
                "benchmark": "training-step overhead, pruner state vs none, ResNet-18 CIFAR shapes, CPU",
                "batch_size": args.batch_size,
                "frequency": args.frequency,
                "timed_steps_per_arm": args.steps,
                "threads": torch.get_num_threads(),
                "optimizer": args.optimizer,
                "patch": args.patch,
                "prunable_weights": prunable,
                "final_sparsity": zeros / prunable,
                "none_step_s_mean": total["none"] / args.steps,
                "state_step_s_mean": total["state"] / args.steps,
                "none_step_s_median": statistics.median(times["none"]),
                "state_step_s_median": statistics.median(times["state"]),
                "amortised_step_time_ratio": round(ratio, 4),
                "goal_ratio_le_1_05": ratio <= 1.05,
                "state_pruner_calls": {
                    "per_step_masking_ms_per_step": 1e3 * pruner_time["per_step_masking_s"] / args.steps,
                    "mask_update_ms_each": 1e3 * pruner_time["mask_updates_s"] / max(1, pruner_time["mask_update_count"]),
                    "mask_updates": pruner_time["mask_update_count"],
                    "amortised_ms_per_step": 1e3
                    * (pruner_time["per_step_masking_s"] + pruner_time["mask_updates_s"])
                    / args.steps,
                    "share_of_state_step_time": (pruner_time["per_step_masking_s"] + pruner_time["mask_updates_s"])
                    / total["state"],
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
