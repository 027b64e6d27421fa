"""Benchmark (issue 11): cost of writing a checkpoint against a CIFAR-shaped training epoch.

ResNet-18 with CIFAR shapes (10 classes, 3x32x32), AdamW (fused), pruner
``state`` with masks at 50% (as in the middle of a run), CPU. Measured in one
process, one after the other:

- checkpoint: ``checkpoint.capture`` + ``checkpoint.save`` (state dicts, RNG
  states, torch.save to a temporary file, fsync, rename), as the runner does
  at the end of an epoch; the median of ``--writes`` writes;
- epoch: the median time of ``--steps`` training steps (forward, loss,
  backward, masking, optimizer step, enforce) at batch ``--batch-size``,
  multiplied by the steps of one CIFAR-10 epoch (50,000 images). The epoch is
  EXTRAPOLATED from those steps (a whole epoch takes far too long on 2 shared
  cores); it leaves out evaluation and data loading, so the real epoch is
  longer and the real ratio smaller.

    python benchmarks/bench_checkpoint.py [--steps 8] [--batch-size 128] [--writes 3] [--threads 1] [--quick]

Prints one JSON line: checkpoint bytes, write time, extrapolated epoch time,
their ratio (goal <= 0.02).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from _quick import parse_args

CIFAR_TRAIN_IMAGES = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed training steps")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--writes", type=int, default=3, help="timed checkpoint writes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    args = parse_args(parser, quick={"steps": 3, "writes": 2})

    import torch
    import torch.nn.functional as F

    from prunekit.builtin.models import resnet18
    from prunekit.builtin.optimizers import adamw
    from prunekit.core.rundir import checkpoint
    from prunekit.core.sparsity.targets import prunable_targets
    from prunekit.core.train.optim import TrainingOptimizer, parameter_groups
    from prunekit_adamwprune import state

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet18(10, 3, 32)
    targets = prunable_targets(model)
    pruner = state(targets)
    opt = TrainingOptimizer(adamw(parameter_groups(model, 5e-4), lr=1e-3, weight_decay=5e-4, epochs=1, steps_per_epoch=1))
    pruner.bind(opt.optimizer)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(args.batch_size, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (args.batch_size,), generator=generator)

    def train_step(step: int) -> None:
        opt.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), labels).backward()
        pruner.before_step(step)
        opt.process_gradients(step)
        opt.step()
        opt.after_step(step)
        pruner.enforce()

    train_step(1)  # optimizer state exists from here on
    pruner.update_masks(0.5, 1)
    train_step(2)  # warm-up, untimed
    step_times = []
    for step in range(3, 3 + args.steps):
        start = time.perf_counter()
        train_step(step)
        step_times.append(time.perf_counter() - start)

    identity = checkpoint.identity_of(model, model="resnet18", optimizer="adamw", pruner="state")
    history = [{"epoch": e, "test_accuracy": 50.0, "train_loss": 1.0} for e in range(1, 51)]
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "checkpoint.pt"
        write_times, size = [], 0
        for _ in range(args.writes):
            start = time.perf_counter()
            cp = checkpoint.capture(
                identity=identity,
                epoch=50,
                step=2 + args.steps,
                batch=0,
                model=model,
                optimizer=opt,
                pruner=pruner,
                generators={"order": generator},
                history=history,
            )
            size = checkpoint.save(path, cp)
            write_times.append(time.perf_counter() - start)
            del cp
        start = time.perf_counter()
        loaded = checkpoint.load(path)
        load_s = time.perf_counter() - start
        assert torch.equal(loaded.model["conv1.weight"], model.state_dict()["conv1.weight"])

    step_s = statistics.median(step_times)
    steps_per_epoch = math.ceil(CIFAR_TRAIN_IMAGES / args.batch_size)
    epoch_s = step_s * steps_per_epoch
    write_s = statistics.median(write_times)
    print(
        json.dumps(
            {
                "benchmark": "checkpoint write vs CIFAR-shaped epoch (ResNet-18, AdamW, state pruner, CPU)",
                "checkpoint_bytes": size,
                "checkpoint_write_s_median": round(write_s, 4),
                "checkpoint_write_s_all": [round(t, 4) for t in write_times],
                "checkpoint_load_s": round(load_s, 4),
                "train_step_s_median": round(step_s, 4),
                "timed_steps": args.steps,
                "batch_size": args.batch_size,
                "steps_per_epoch": steps_per_epoch,
                "epoch_s_extrapolated": round(epoch_s, 1),
                "epoch_note": f"extrapolated: median of {args.steps} timed steps x {steps_per_epoch} steps; excludes evaluation and data loading",
                "ratio_write_to_epoch": round(write_s / epoch_s, 5),
                "goal_ratio_at_most": 0.02,
                "threads": args.threads,
            }
        )
    )


if __name__ == "__main__":
    main()
