"""mask_storage: step time, exact zeros and the ledger of ``bool``, ``bits`` and ``implicit`` masks. CPU.

1. Step time: three identical ResNet-18s (CIFAR stem, 10 classes, batch 32 of fixed
   synthetic 3x32x32 data), AdamW, ``magnitude`` with each storage, pruned to
   ``--start`` before timing and ramping to ``--end`` with mask updates every
   ``--frequency`` steps. Steps are interleaved (the order rotates every step) so
   machine drift hits all alike; ratio = mean step time (updates included) of
   ``bits``/``implicit`` over ``bool`` (goal <= 1.03). After each step, untimed,
   the ``bool`` arm counts live weights (mask True) that are exactly 0.0: the
   events where ``implicit`` would count a live weight as pruned.
2. Full digits runs (LeNet-5, the default 20 epochs) of ``magnitude``/AdamW and
   ``state``/adamwprune with each storage through the runner: live weights at
   exactly 0.0 after any step (``bool``), and whether weights, masks and
   accuracy are identical to ``bool``.
3. The ledger of ResNet-50 (ImageNet shapes) + AdamW + ``state`` at 70% for each storage.
4. Transient memory of one global mask update of that ResNet-50 (``state``, 50% -> 70%),
   per storage: the peak extra resident bytes of the update (``VmHWM`` after it minus
   ``VmRSS`` before it, the mark reset by ``_peak_memory.release_and_reset_peak``; not
   ``ru_maxrss``, which in a child also holds the parent's size when it forked); each
   storage in a fresh process under the ``mmap128k`` allocator settings, so peak RSS
   tracks live bytes. It includes the scores the update computes, layer by layer;
   against it, every layer's ``bool`` mask at once would be one byte per prunable weight.

    python benchmarks/bench_mask_storage.py [--steps 100] [--frequency 50] [--digits-epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from _peak_memory import ALLOCATORS, release_and_reset_peak
from _quick import parse_args

from prunekit.builtin.models import resnet18, resnet50
from prunekit.builtin.optimizers import adamw
from prunekit.builtin.pruners import magnitude
from prunekit.core.config.settings import RunConfig
from prunekit.core.measure.ledger import memory_ledger
from prunekit.core.run import runner
from prunekit.core.sparsity.pruner import MaskPruner
from prunekit.core.sparsity.targets import prunable_targets
from prunekit.core.train.optim import parameter_groups

STORAGES = ("bool", "bits", "implicit")


def live_zeros(pruner: MaskPruner) -> int:
    """Live weights (mask True) that are exactly zero now."""
    total = 0
    for i, target in enumerate(pruner.targets):
        if pruner.store.has(i):
            total += int((pruner.store.read(i) & (target.parameter.detach() == 0)).sum())
    return total


def step_time(args) -> dict:
    arms = {}
    for storage in STORAGES:
        torch.manual_seed(args.seed)
        model = resnet18(10, 3, 32)
        pruner = magnitude(prunable_targets(model), mask_storage=storage)
        opt = adamw(parameter_groups(model, 5e-4), lr=1e-3, weight_decay=5e-4, epochs=1, steps_per_epoch=1)
        pruner.bind(opt)
        arms[storage] = (model, pruner, opt)
    g = torch.Generator().manual_seed(args.seed)
    x, y = torch.randn(args.batch_size, 3, 32, 32, generator=g), torch.randint(0, 10, (args.batch_size,), generator=g)

    def one_step(storage: str, step: int, sparsity: float | None) -> float:
        model, pruner, opt = arms[storage]
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        pruner.before_step(step)
        opt.step()
        if sparsity is not None:
            pruner.update_masks(sparsity, step)
        pruner.enforce()
        return time.perf_counter() - start

    for storage in STORAGES:  # warm-up, then prune to the start sparsity
        one_step(storage, 1, args.start)
    times = {s: [] for s in STORAGES}
    zeros, checks = 0, 0
    for k in range(args.steps):
        step = k + 2
        update = (k + 1) % args.frequency == 0
        sparsity = args.start + (args.end - args.start) * (k + 1) / args.steps if update else None
        order = STORAGES[k % 3 :] + STORAGES[: k % 3]
        for storage in order:
            times[storage].append(one_step(storage, step, sparsity))
        zeros += live_zeros(arms["bool"][1])
        checks += 1
    means = {s: statistics.mean(t) for s, t in times.items()}
    identical = all(
        torch.equal(a.parameter, b.parameter)
        for s in ("bits", "implicit")
        for a, b in zip(arms[s][1].targets, arms["bool"][1].targets)
    )
    return {
        "model": "resnet18 (CIFAR stem, 10 classes)",
        "batch_size": args.batch_size,
        "timed_steps_per_arm": args.steps,
        "mask_updates_per_arm": args.steps // args.frequency,
        "frequency": args.frequency,
        "step_s_mean": {s: round(v, 4) for s, v in means.items()},
        "step_s_median": {s: round(statistics.median(t), 4) for s, t in times.items()},
        "ratio_bits_over_bool": round(means["bits"] / means["bool"], 4),
        "ratio_implicit_over_bool": round(means["implicit"] / means["bool"], 4),
        "goal_ratio": "<= 1.03",
        "weights_identical_to_bool": identical,
        "live_weights_exactly_zero_after_a_step": zeros,
        "live_weight_checks": checks * sum(t.numel() for t in arms["bool"][1].targets),
    }


def digits_run(pruner: str, optimizer: str, storage: str, epochs: int):
    """A default digits run through the runner; its summary, final weights and masks, and live-zero counts."""
    captured, zeros = {}, [0, 0]
    real_build, real_enforce = runner.build, MaskPruner.enforce

    def build(*a, **kw):
        captured["built"] = real_build(*a, **kw)
        return captured["built"]

    def enforce(self):
        real_enforce(self)
        zeros[0] += live_zeros(self)
        zeros[1] += 1

    runner.build, MaskPruner.enforce = build, enforce
    try:
        config = RunConfig(
            pruner=pruner, optimizer=optimizer, pruner_opts={"mask_storage": storage}, epochs=epochs,
            device="cpu", samplers=[], out=f"/tmp/prunekit-bench-mask-{time.time_ns()}", quiet=True,
        )  # fmt: skip
        summary = runner.run(config, warn=lambda m: None)[1]
    finally:
        runner.build, MaskPruner.enforce = real_build, real_enforce
    b = captured["built"]
    return summary, [t.parameter.detach().clone() for t in b.targets], b.pruner.masks, zeros


def digits_runs(epochs: int) -> dict:
    out = {}
    for pruner, optimizer in (("magnitude", "adamw"), ("state", "adamwprune")):
        runs = {s: digits_run(pruner, optimizer, s, epochs) for s in STORAGES}
        base = runs["bool"]
        out[pruner] = {
            "epochs": epochs,
            "steps": base[0]["steps"],
            "final_test_accuracy": {s: r[0]["final_test_accuracy"] for s, r in runs.items()},
            "achieved_sparsity": {s: r[0]["achieved_sparsity"] for s, r in runs.items()},
            "pruner_state_bytes_per_prunable_weight": {
                s: round(r[0]["ledger"]["pruner_state_bytes_per_prunable_weight"], 5) for s, r in runs.items()
            },
            "identical_to_bool": {
                s: all(torch.equal(a, b) for a, b in zip(r[1], base[1]))
                and all(torch.equal(a, b) for a, b in zip(r[2], base[2]))
                and r[0]["final_test_accuracy"] == base[0]["final_test_accuracy"]
                for s, r in runs.items()
                if s != "bool"
            },
            "live_weights_exactly_zero_after_a_step_bool": base[3][0],
            "steps_checked": base[3][1],
        }
    return out


def _resnet50_after_one_step(storage: str) -> tuple:
    """ResNet-50 + AdamW (Adam state present after one step on random gradients) + state pruner."""
    from prunekit_adamwprune import state

    torch.manual_seed(0)
    model = resnet50(1000, 3, 224)
    targets = prunable_targets(model)
    pruner = state(targets, mask_storage=storage)
    opt = adamw(parameter_groups(model, 1e-4), lr=1e-3, weight_decay=1e-4, epochs=1, steps_per_epoch=1)
    pruner.bind(opt)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    opt.step()
    return model, targets, pruner, opt


def resnet50_ledgers() -> dict:
    out = {}
    for storage in STORAGES:
        model, targets, pruner, opt = _resnet50_after_one_step(storage)
        pruner.update_masks(0.7, 1)
        ledger = memory_ledger(model, opt, pruner.state_tensors(), targets, pruner.transient_bytes())
        out[storage] = {k: v for k, v in ledger.items() if k != "per_prunable_weight"}
        del model, opt, pruner
    return out


def _status(key: str) -> int:
    """A ``kB`` figure of ``/proc/self/status`` in bytes."""
    with open("/proc/self/status") as handle:
        return int(re.search(rf"{key}:\s+(\d+) kB", handle.read()).group(1)) * 1024


def transient_in_this_process(storage: str) -> dict:
    """Peak RSS rise (bytes) during one global update of ResNet-50 + AdamW + state, 50% -> 70%."""
    model, targets, pruner, opt = _resnet50_after_one_step(storage)
    pruner.update_masks(0.5, 1)
    for p in model.parameters():
        p.grad = None
    reset = release_and_reset_peak()
    before, start = _status("VmRSS"), time.perf_counter()
    pruner.update_masks(0.7, 2)
    seconds, extra = time.perf_counter() - start, _status("VmHWM") - before
    largest = max(t.parameter.numel() for t in targets)
    return {
        "update_peak_extra_resident_bytes": extra,
        "peak_mark_reset": reset,
        "update_s": round(seconds, 3),
        "largest_layer_weights": largest,
        "prunable_weights": sum(t.parameter.numel() for t in targets),
        "pruner_transient_reported": sum(pruner.transient_bytes().values()),
    }


def transients() -> dict:
    out: dict = {}
    env = dict(os.environ, **ALLOCATORS["mmap128k"], OMP_NUM_THREADS="1")
    for storage in STORAGES:
        done = subprocess.run(
            [sys.executable, __file__, "--transient-child", storage], capture_output=True, text=True, env=env, check=True
        )
        out[storage] = json.loads(done.stdout.strip().splitlines()[-1])
    weights = out["bool"]["prunable_weights"]
    out["every_layer_bool_mask_at_once_bytes"] = weights
    out["what"] = "peak extra resident bytes of one global state update of ResNet-50 (scores, keys, histograms, masks)"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="timed steps per storage (a multiple of --frequency)")
    parser.add_argument("--frequency", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--start", type=float, default=0.5)
    parser.add_argument("--end", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits-epochs", type=int, default=20, help="epochs of the digits runs (20: the default run)")
    parts = ["steps", "digits", "ledger", "transient"]
    parser.add_argument("--parts", nargs="*", default=parts, choices=parts)
    parser.add_argument("--transient-child", choices=STORAGES, help=argparse.SUPPRESS)
    args = parse_args(parser, quick={"steps": 50, "batch_size": 8, "digits_epochs": 3})
    torch.set_num_threads(1)
    if args.transient_child:
        print(json.dumps(transient_in_this_process(args.transient_child)))
        return
    result: dict = {"threads": 1, "pruner_for_step_time": "magnitude", "optimizer": "adamw (fused)"}
    if "ledger" in args.parts:
        result["resnet50_adamw_state_ledger"] = resnet50_ledgers()
    if "digits" in args.parts:
        result["lenet5_digits_runs"] = digits_runs(args.digits_epochs)
    if "transient" in args.parts:
        result["resnet50_state_global_update_transient"] = transients()
    if "steps" in args.parts:
        result["resnet18_step_time"] = step_time(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
