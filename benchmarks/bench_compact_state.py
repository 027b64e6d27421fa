"""state_storage=compact and compact-indexed against dense: optimizer-state bytes, peak resident memory and step time. CPU, one thread.

ResNet-50 (ImageNet shapes: 1000 classes, fixed synthetic 3x224x224 batches) with
AdamW and the ``state`` pruner (bool masks), pruned to 50, 70 and 90% by one global
mask update after a first step:

1. ``ledger``: the exact ledger's optimizer-state bytes, in all and per prunable
   weight, dense and compact; plus the lowest-memory configuration prunekit offers
   (``state`` + ``mask_storage=implicit`` + compact state) against AdamW + ``movement``:
   bytes per prunable weight by kind (weight, gradient, optimizer state, pruner state).
2. ``rss``: peak resident memory of the process over one training step and one mask
   update (``VmHWM`` after them, the mark reset just before by
   ``_peak_memory.release_and_reset_peak``), each arm in a fresh process under the
   ``mmap128k`` allocator settings (peak RSS tracks live bytes); and the rise over
   ``VmRSS`` just before them.
3. ``steps``: mean time of a training step (forward, backward, gradient masking,
   optimizer step, enforcement; mask updates are not timed), the three arms
   interleaved in one process (the order rotates every step); ratio compact/dense
   of the whole step (goal <= 1.05 at 90%) and of the optimizer step alone.

The load average before and after is reported: the machine may be shared.

    python benchmarks/bench_compact_state.py [--steps 6] [--batch-size 2] [--parts ledger rss steps]
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

from prunekit.builtin.models import resnet50
from prunekit.builtin.optimizers import adamw
from prunekit.core.measure.ledger import memory_ledger
from prunekit.core.sparsity.targets import prunable_targets
from prunekit.core.train.optim import parameter_groups

SPARSITIES = (0.5, 0.7, 0.9)
STORAGES = ("dense", "compact", "compact-indexed")
COMPACT = STORAGES[1:]


def _arm(storage: str, sparsity: float, pruner: str = "state", mask_storage: str = "bool", batch: int = 2):
    """ResNet-50 + AdamW (fused) + pruner after one step, pruned to ``sparsity`` by one global update."""
    torch.manual_seed(0)
    model = resnet50(1000, 3, 224)
    targets = prunable_targets(model)
    if pruner == "state":
        from prunekit_adamwprune import state

        made = state(targets, mask_storage=mask_storage)
    else:
        from prunekit_movement import movement

        made = movement(targets)
    opt = adamw(parameter_groups(model, 1e-4), lr=1e-3, weight_decay=1e-4, epochs=1, steps_per_epoch=1, state_storage=storage)
    made.bind(opt)
    data = _batch(batch)
    _step(model, made, opt, data, 1)
    made.update_masks(sparsity, 1)
    return model, targets, made, opt, data


def _batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 224, 224, generator=g), torch.randint(0, 1000, (n,), generator=g)


def _step(model, pruner, opt, data, step: int) -> float:
    """One training step; returns the optimizer step's own seconds."""
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(data[0]), data[1]).backward()
    pruner.before_step(step)
    start = time.perf_counter()
    opt.step()
    seconds = time.perf_counter() - start
    pruner.enforce()
    return seconds


def _per_weight(ledger: dict) -> dict[str, float]:
    prunable = ledger["prunable_weights"]
    kinds = ("parameter", "gradient", "optimizer_state", "pruner_state")
    out = {k: round(sum(v[k] for v in ledger["per_prunable_weight"].values()) / prunable, 4) for k in kinds}
    out["total"] = round(sum(out.values()), 4)
    return out


def ledgers() -> dict:
    out: dict = {}
    for sparsity in SPARSITIES:
        row = {}
        for storage in STORAGES:
            model, targets, pruner, opt, _ = _arm(storage, sparsity)
            ledger = memory_ledger(model, opt, pruner.state_tensors(), targets)
            row[storage] = {"optimizer_state_bytes": ledger["optimizer_state"], "per_prunable_weight": _per_weight(ledger)}
        for s in COMPACT:
            row[f"{s}_over_dense_optimizer_state"] = round(
                row[s]["optimizer_state_bytes"] / row["dense"]["optimizer_state_bytes"], 4
            )
        out[f"{round(sparsity * 100)}%"] = row
    from prunekit.core.sparsity.masks import ImplicitMaskError

    lowest: dict = {}
    for name, (storage, pruner, masks) in {
        "state + implicit masks + compact state": ("compact", "state", "implicit"),
        "state + bits masks + compact state": ("compact", "state", "bits"),
        "adamw + movement (dense state)": ("dense", "movement", "bool"),
    }.items():
        try:
            model, targets, made, opt, _ = _arm(storage, 0.9, pruner, masks)
        except ImplicitMaskError as refused:  # exact zeros before the first mask: implicit cannot tell them from pruned
            lowest[name] = {"refused": str(refused)}
            continue
        lowest[name] = _per_weight(memory_ledger(model, opt, made.state_tensors(), targets))
    out["lowest_memory_at_90%_bytes_per_prunable_weight"] = lowest
    out["prunable_weights"] = memory_ledger(model, opt, {}, targets)["prunable_weights"]
    return out


def _status(key: str) -> int:
    with open("/proc/self/status") as handle:
        return int(re.search(rf"{key}:\s+(\d+) kB", handle.read()).group(1)) * 1024


def rss_in_this_process(storage: str, sparsity: float, batch: int) -> dict:
    model, targets, pruner, opt, data = _arm(storage, sparsity, batch=batch)
    _step(model, pruner, opt, data, 2)  # the compact layout's first step done
    for p in model.parameters():
        p.grad = None
    reset = release_and_reset_peak()
    before = _status("VmRSS")
    _step(model, pruner, opt, data, 3)
    pruner.update_masks(min(sparsity + 0.02, 0.99), 3)
    return {"peak_rss_bytes": _status("VmHWM"), "rise_over_rss_before_bytes": _status("VmHWM") - before, "mark_reset": reset}


def rss(batch: int) -> dict:
    env = dict(os.environ, **ALLOCATORS["mmap128k"], OMP_NUM_THREADS="1")
    out: dict = {}
    for sparsity in SPARSITIES:
        row = {}
        for storage in STORAGES:
            command = [sys.executable, __file__, "--rss-child", storage, str(sparsity), "--batch-size", str(batch)]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            row[storage] = json.loads(done.stdout.strip().splitlines()[-1])
        for s in COMPACT:
            row[f"{s}_minus_dense_peak_bytes"] = row[s]["peak_rss_bytes"] - row["dense"]["peak_rss_bytes"]
        out[f"{round(sparsity * 100)}%"] = row
    return out


def step_times(steps: int, batch: int) -> dict:
    out: dict = {}
    for sparsity in SPARSITIES:
        arms = {s: _arm(s, sparsity, batch=batch) for s in STORAGES}
        for s in STORAGES:  # warm-up: the compact layout's first step
            _step(*(arms[s][i] for i in (0, 2, 3, 4)), 2)
        total: dict[str, list[float]] = {s: [] for s in STORAGES}
        optim: dict[str, list[float]] = {s: [] for s in STORAGES}
        for k in range(steps):
            for s in STORAGES[k % 3 :] + STORAGES[: k % 3]:  # each arm first, middle and last in turn
                model, _, pruner, opt, data = arms[s]
                start = time.perf_counter()
                optim[s].append(_step(model, pruner, opt, data, k + 3))
                total[s].append(time.perf_counter() - start)
        row: dict = {
            "step_s_mean": {s: round(statistics.mean(v), 4) for s, v in total.items()},
            "optimizer_step_s_mean": {s: round(statistics.mean(v), 4) for s, v in optim.items()},
        }
        for s in COMPACT:
            row[f"ratio_{s}_over_dense_step"] = round(statistics.mean(total[s]) / statistics.mean(total["dense"]), 4)
            row[f"ratio_{s}_over_dense_optimizer_step"] = round(statistics.mean(optim[s]) / statistics.mean(optim["dense"]), 4)
            row[f"{s}_weights_identical"] = all(
                torch.equal(a, b) for a, b in zip(arms["dense"][0].parameters(), arms[s][0].parameters())
            )
        out[f"{round(sparsity * 100)}%"] = row
        del arms
    out["goal"] = "step ratio <= 1.05 at 90%"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per arm and sparsity")
    parser.add_argument("--batch-size", type=int, default=2)
    parts = ["ledger", "rss", "steps"]
    parser.add_argument("--parts", nargs="*", default=parts, choices=parts)
    parser.add_argument("--rss-child", nargs=2, metavar=("STORAGE", "SPARSITY"), help=argparse.SUPPRESS)
    args = parse_args(parser, quick={"steps": 2, "batch_size": 1})
    torch.set_num_threads(1)
    if args.rss_child:
        print(json.dumps(rss_in_this_process(args.rss_child[0], float(args.rss_child[1]), args.batch_size)))
        return
    result: dict = {"threads": 1, "model": "resnet50 (1000 classes, 224x224)", "batch_size": args.batch_size}
    result["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    if "ledger" in args.parts:
        result["ledger"] = ledgers()
    if "rss" in args.parts:
        result["peak_rss_over_a_step_and_a_mask_update"] = rss(args.batch_size)
    if "steps" in args.parts:
        result["step_time"] = step_times(args.steps, args.batch_size)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
