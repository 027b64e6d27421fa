"""Benchmark 1 (issue 3): one global mask update of the ``state`` pruner on ResNet-50.

ResNet-50 (timm, ImageNet shapes, 25.6M parameters) with AdamW state present.
Two ways to update the masks are compared, each measured in its own fresh
subprocess (time, and peak extra resident memory from ``ru_maxrss`` read
before and after the update):

- ``prunekit``: ``StatePruner.update_masks`` (exact global threshold by
  per-layer counting, scores recomputed per layer, never concatenated);
- ``reference``: the seed's approach, written here: concatenate every score,
  ``kthvalue`` on a random 2% sample, ``mask = score > threshold``, then apply
  the masks to the weights and Adam moments (as the seed does).

Both use the same score function (bitter7) and produce the same ``torch.bool``
masks. Each worker measures two updates: the first (creating the masks, at half
the target) and a later one (masks present, at the target). Workers run under
two glibc settings: ``default`` (freed heap may stay resident, so RSS includes
allocator slack) and ``mmap128k`` (every allocation of 128 KiB or more is its
own mapping, so peak RSS tracks live bytes). A third subprocess checks prunekit's masks against the exact
concatenate + ``kthvalue`` masks. Before each measured update the process
returns freed heap to the OS (``malloc_trim``) and resets its peak-RSS mark
(``/proc/self/clear_refs``), so ``ru_maxrss`` after minus before is the
update's own peak extra memory.

    python benchmarks/bench_mask_update.py [--sparsity 0.7] [--repeats 3] [--threads 1] [--patch FILE]

``--patch FILE`` adds a third arm: prunekit with ``FILE``'s ``install()`` applied
(used to measure a proposed core change before it lands).

Prints one JSON object. Goals: extra-memory ratio <= 0.25, time ratio <= 1.5,
exact masks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from _peak_memory import ALLOCATORS, current_rss, measure
from _quick import parse_args

MIB = 1 << 20


def _build(seed: int):
    """ResNet-50 with AdamW state as after one real step with a random gradient."""
    import torch

    from prunekit.builtin.models import resnet50
    from prunekit.core.sparsity.targets import prunable_targets
    from prunekit.core.train.optim import parameter_groups

    torch.manual_seed(seed)
    model = resnet50(1000, 3, 224)
    opt = torch.optim.AdamW(parameter_groups(model, 5e-4), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for group in opt.param_groups:
            for p in group["params"]:
                g = torch.randn(p.shape, generator=gen) * 1e-2 * torch.rand((), generator=gen)
                opt.state[p] = {
                    "step": torch.tensor(1.0),
                    "exp_avg": g.mul(0.1),  # (1 - beta1) * g
                    "exp_avg_sq": g.mul(g).mul_(0.001),  # (1 - beta2) * g^2
                }
                p.add_(g.sign(), alpha=-1e-3)  # AdamW's first update: lr * m_hat / sqrt(v_hat)
                del g
    return model, prunable_targets(model), opt


def _reference_update(targets, opt, sparsity: float, seed: int) -> list:
    """The seed's update: concatenate all scores, kthvalue on a 2% random sample."""
    import torch

    from prunekit_adamwprune.scores import bitter7

    def score(t):
        return bitter7(t.parameter.detach(), None, opt.state[t.parameter]["exp_avg_sq"], 1e-8)

    with torch.no_grad():
        flat = torch.cat([score(t).flatten() for t in targets])
        n = flat.numel()
        sample_size = max(1, int(0.02 * n))
        gen = torch.Generator().manual_seed(seed)
        sample = flat[torch.randint(n, (sample_size,), generator=gen)]
        k = max(1, int(sparsity * sample_size))
        threshold = sample.kthvalue(k).values
        del flat, sample
        masks = []
        for t in targets:
            mask = score(t) > threshold
            t.parameter.mul_(mask)
            state = opt.state[t.parameter]
            state["exp_avg"].mul_(mask)
            state["exp_avg_sq"].mul_(mask)
            masks.append(mask)
    return masks


def worker(method: str, sparsity: float, seed: int, threads: int, patch: str | None) -> dict:
    """Two measured updates in this (fresh) process: the first creates the masks
    (at half the target), the second runs with masks present (at the target)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if patch:
        _install_patch(patch)
    model, targets, opt = _build(seed)
    if method == "reference":
        holder: dict = {}

        def update(s: float):
            def run():
                holder["masks"] = _reference_update(targets, opt, s, seed)

            return run
    else:
        from prunekit_adamwprune.pruner import StatePruner

        pruner = StatePruner(targets)
        pruner.bind(opt)
        holder = pruner  # .masks: the bool masks (a property)

        def update(s: float):
            return lambda: pruner.update_masks(s, 1)

    out = {"method": method, "rss_before_bytes": current_rss()}
    for phase, s in (("first", sparsity / 2), ("later", sparsity)):
        seconds, extra, reset = measure(update(s))
        masks = holder["masks"] if isinstance(holder, dict) else holder.masks
        out[phase] = {
            "sparsity": s,
            "seconds": seconds,
            "extra_peak_bytes": extra,
            "peak_reset": reset,
            "achieved_sparsity": sum(int((~m).sum()) for m in masks) / sum(m.numel() for m in masks),
        }
    out["mask_bytes"] = sum(m.numel() * m.element_size() for m in masks)
    return out


def _install_patch(path: str) -> None:
    """Load a module from ``path`` and call its ``install()`` (to try a proposed core change)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("proposed_patch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install()


def check_exact(sparsity: float, seed: int, patch: str | None) -> dict:
    """prunekit's masks against the exact masks: concatenate, kthvalue, ties by position."""
    import torch

    from prunekit_adamwprune.pruner import StatePruner

    if patch:
        _install_patch(patch)
    model, targets, opt = _build(seed)
    pruner = StatePruner(targets)
    pruner.bind(opt)
    with torch.no_grad():
        scores = [pruner.score(i, t).float() for i, t in enumerate(targets)]
        flat = torch.cat([s.flatten() for s in scores])
        k = int(round(sparsity * flat.numel()))
        kth = flat.kthvalue(k).values
        tie = flat == kth  # exactly k pruned: ties at the k-th score pruned in position order
        keep = (flat > kth) | (tie & (tie.cumsum(0) > k - int((flat < kth).sum())))
        exact = [m.view_as(s) for m, s in zip(keep.split([s.numel() for s in scores]), scores)]
        del flat, scores, tie
    pruner.update_masks(sparsity, 1)
    equal = all(torch.equal(a, b) for a, b in zip(pruner.masks, exact))
    return {
        "masks_equal_exact": equal,
        "prunable_weights": sum(t.numel() for t in targets),
        "largest_layer": max(t.numel() for t in targets),
        "parameters": sum(p.numel() for p in model.parameters()),
        "exact_pruned": k,
        "prunekit_pruned": sum(int((~m).sum()) for m in pruner.masks),
    }


def _spawn(*args: str, allocator: str = "default") -> dict:
    env = {**os.environ, **ALLOCATORS[allocator]}
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *args], capture_output=True, text=True, check=False, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sparsity", type=float, default=0.7, help="target of the second (measured) update")
    parser.add_argument("--repeats", type=int, default=3, help="fresh subprocesses per arm and allocator (interleaved)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads in the workers (0: torch's default); 1 keeps timings stable on a shared machine",
    )
    parser.add_argument("--allocator", choices=(*ALLOCATORS, "both"), default="both", help="glibc settings of the workers")
    parser.add_argument("--patch", help="also measure prunekit with PATCH.install() applied (a proposed core change)")
    parser.add_argument("--worker", choices=("prunekit", "reference", "exact"), help=argparse.SUPPRESS)
    args = parse_args(parser, quick={"repeats": 1, "allocator": "mmap128k"})
    if args.worker == "exact":
        print(json.dumps(check_exact(args.sparsity, args.seed, args.patch)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.sparsity, args.seed, args.threads, args.patch)))
        return

    arms = {"reference": ("reference",), "prunekit": ("prunekit",)}
    if args.patch:
        arms["prunekit+patch"] = ("prunekit", "--patch", args.patch)
    allocators = list(ALLOCATORS) if args.allocator == "both" else [args.allocator]
    common = ("--sparsity", str(args.sparsity), "--seed", str(args.seed), "--threads", str(args.threads))
    runs = {a: {arm: [] for arm in arms} for a in allocators}
    for r in range(args.repeats):
        for allocator in allocators:
            order = list(arms) if r % 2 == 0 else list(reversed(arms))
            for arm in order:
                runs[allocator][arm].append(_spawn("--worker", *arms[arm], *common, allocator=allocator))
    exact = {"prunekit": _spawn("--worker", "exact", *common)}
    if args.patch:
        exact["prunekit+patch"] = _spawn("--worker", "exact", "--patch", args.patch, *common)

    result: dict = {
        "benchmark": "mask update, pruner state (bitter7), ResNet-50 ImageNet shapes, AdamW state present, CPU",
        "first_update": "creates the masks, at sparsity/2",
        "later_update": "masks present, at sparsity",
        "sparsity": args.sparsity,
        "repeats": args.repeats,
        "threads": args.threads or "torch default",
        "cpu_count": os.cpu_count(),
        "mask_mib": runs[allocators[0]]["prunekit"][0]["mask_bytes"] / MIB,
        "exactness": exact,
    }
    for allocator in allocators:
        by_arm = runs[allocator]

        def med(arm: str, phase: str, key: str, by_arm: dict = by_arm) -> float:
            return statistics.median(run[phase][key] for run in by_arm[arm])

        section: dict = {"env": ALLOCATORS[allocator]}
        for arm in arms:
            section[arm] = {
                phase: {
                    "seconds_median": round(med(arm, phase, "seconds"), 4),
                    "extra_peak_mib_median": round(med(arm, phase, "extra_peak_bytes") / MIB, 1),
                    "achieved_sparsity": by_arm[arm][0][phase]["achieved_sparsity"],
                }
                for phase in ("first", "later")
            }
        for arm in arms:
            if arm == "reference":
                continue
            for phase in ("first", "later"):
                t = med(arm, phase, "seconds") / med("reference", phase, "seconds")
                m = med(arm, phase, "extra_peak_bytes") / med("reference", phase, "extra_peak_bytes")
                section[f"{arm}_vs_reference_{phase}"] = {
                    "time_ratio": round(t, 3),
                    "extra_memory_ratio": round(m, 3),
                    "goal_time_ratio_le_1_5": t <= 1.5,
                    "goal_extra_memory_ratio_le_0_25": m <= 0.25,
                }
        section["peak_reset_everywhere"] = all(
            run[p]["peak_reset"] for rs in by_arm.values() for run in rs for p in ("first", "later")
        )
        result[f"allocator_{allocator}"] = section
    result["runs"] = runs
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
