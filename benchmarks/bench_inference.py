"""What sparsity buys (issue 22): FLOPs, export sizes and CPU inference of LeNet-5 and ResNet-18.

Each model (random initial weights; LeNet-5 32x32x1, ResNet-18 with the CIFAR stem at 32x32x3)
is pruned by magnitude, per layer, at 90% unstructured and at 2:4 (50%, groups along the input
dimension). For each: forward FLOPs per example (dense and nonzero, torch.utils.flop_counter),
sizes of the dense / sparse / nm safetensors exports (bytes on disk), and the latency per batch of
the dense model and its CSR-Linear form (prunekit.inference; median and p90 over timed batches
after warm-up, the two arms interleaved round by round). Load average is recorded.

    python benchmarks/bench_inference.py [--batch-size 64] [--rounds 5] [--repeats 20] [--threads 1]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from _quick import parse_args


def _pruned(name: str, structure: str):
    import torch

    from prunekit.builtin.models import lenet5, resnet18
    from prunekit.builtin.pruners import magnitude
    from prunekit.core.sparsity.targets import prunable_targets

    torch.manual_seed(0)
    model = lenet5(10, 1, 32) if name == "lenet5" else resnet18(10, 3, 32)
    targets = prunable_targets(model)
    pruner = magnitude(targets, scope="layer", structure=structure)
    pruner.update_masks(0.9 if structure == "unstructured" else 0.5, 1)
    masks = {t.name: m for t, m in zip(targets, pruner.masks) if m is not None}
    return model.eval(), targets, pruner, masks


def _sizes(model, masks, nm, covered) -> dict[str, int]:
    from safetensors.torch import save_file

    from prunekit.export.formats import pack

    state = {k: v.detach() for k, v in model.state_dict().items()}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("dense", "sparse") + (("nm",) if nm else ()):
            chosen = {k: v for k, v in masks.items() if fmt != "nm" or k in covered}
            tensors, _ = pack(state, chosen, fmt, nm)
            path = Path(tmp) / f"{fmt}.safetensors"
            save_file(tensors, str(path))
            out[fmt] = path.stat().st_size
    return out


def _case(name: str, structure: str, args) -> dict:
    import torch

    from prunekit.core.measure.flops import count_forward, densities
    from prunekit.inference import forms, measure

    model, targets, pruner, masks = _pruned(name, structure)
    channels = 1 if name == "lenet5" else 3
    example = torch.randn(args.batch_size, channels, 32, 32, generator=torch.Generator().manual_seed(1))
    forward = count_forward(model, example, targets)
    nonzero = forward.nonzero(densities(targets))
    nm = pruner.structure.n_of_m
    covered = [targets[i].name for i in pruner.structure.covered]
    made, skipped = forms(model, torch.device("cpu"))
    rounds: dict[str, list[float]] = {k: [] for k in made}
    p90: dict[str, list[float]] = {k: [] for k in made}
    memory: dict[str, dict[str, int]] = {}
    for _ in range(args.rounds):  # interleaved: dense, csr, dense, csr, ...
        for key, form in made.items():
            r = measure(form, example, warmup=args.warmup, repeats=args.repeats)
            rounds[key].append(r["median_ms"])
            p90[key].append(r["p90_ms"])
            memory[key] = {"weight_bytes": r["weight_bytes"], "peak_batch_bytes": r["peak_batch_bytes"]}  # exact: same each round
    latency = {k: {"median_ms": statistics.median(v), "p90_ms": statistics.median(p90[k])} for k, v in rounds.items()}
    sizes = _sizes(model, masks, nm, covered)
    return {
        "model": name,
        "structure": structure,
        "prunable_sparsity": 1 - sum(int((t.weight != 0).sum()) for t in targets) / sum(t.weight.numel() for t in targets),
        "forward_dense_flops": forward.total,
        "forward_nonzero_flops": round(nonzero),
        "theoretical_speedup": forward.total / nonzero,
        "export_bytes": sizes,
        "export_ratio_to_dense": {k: v / sizes["dense"] for k, v in sizes.items()},
        "latency_per_batch": latency,
        # weights, and the peak of a batch's allocations beyond them (torch profiler memory events)
        "memory_bytes": memory,
        "csr_latency_ratio_to_dense": latency["csr"]["median_ms"] / latency["dense"]["median_ms"] if "csr" in latency else None,
        "skipped": skipped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parse_args(parser, quick={"rounds": 2, "repeats": 5, "warmup": 2, "batch_size": 16})
    import torch

    torch.set_num_threads(args.threads)
    before = os.getloadavg()
    cases = [_case(m, s, args) for m in ("lenet5", "resnet18") for s in ("unstructured", "2:4")]
    print(
        json.dumps(
            {
                "benchmark": "bench_inference",
                "batch_size": args.batch_size,
                "threads": args.threads,
                "rounds": args.rounds,
                "repeats_per_round": args.repeats,
                "load_average_before": before,
                "load_average_after": os.getloadavg(),
                "note": "random initial weights pruned by magnitude per layer; convolutions stay dense in every form",
                "cases": cases,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
