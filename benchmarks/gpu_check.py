"""One prepared GPU check: each CUDA path of prunekit once, in under five minutes, one JSON document.

    python benchmarks/gpu_check.py [--budget-s 290] [--keep DIR]

On a machine without CUDA it prints why it did nothing and exits 0. On a CUDA machine it runs real
``prunekit run`` processes (ResNet-18 on CIFAR-shaped synthetic data) and reports each item as
``ok`` (with its figures), ``failed`` (the error's first line) or ``skipped`` (the reason):

- ``pruner/<name>`` for none, magnitude, state, movement, rigl: the run on the GPU with
  ``--sampler torch --sampler nvidia`` (allocator peaks per phase, NVML figures, exact ledger,
  step time) and the same run on the CPU; achieved sparsity and ledger must match exactly,
  accuracy is compared;
- ``amp/bf16`` and ``amp/fp16-overflow``: autocast in bf16, and fp16 with a GradScaler where one
  step's gradients are made infinite: that step must be skipped, not counted as a step, a mask
  update or a spike;
- ``data/device`` against ``data/pinned-host``: the same run with its data on the GPU and in
  pinned host memory;
- ``compile``, ``inference/2:4`` and ``compact-state``: this round's CUDA forms, each skipped
  while not built;
- ``ddp/nccl``: DDP on every GPU present (world size 1 still takes the collective path).

Exit status: 0 when nothing failed (skips included), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_harness import ROOT, Context, Item, Skip, prunekit_run, python_with_prunekit, report, run_child, run_items  # noqa: E402

#: The short CIFAR-shaped run every item varies (16 optimizer steps, about 10 s on an H200 with start-up).
RESNET_RUN = [
    "--model", "resnet18", "--dataset", "synthetic", "--dataset-opt", "train_size=512", "--dataset-opt", "test_size=256",
    "--epochs", "2", "--batch-size", "64", "--sparsity", "0.7", "--seed", "0", "--checkpoint-every", "0",
]  # fmt: skip
PRUNERS = ("none", "magnitude", "state", "movement", "rigl")
PLUGINS = {"prunekit-adamwprune", "prunekit-movement", "prunekit-dst", "prunekit-nvidia-mem"}
CHILD = str(ROOT / "benchmarks" / "_gpu_child.py")


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """What one run shows: accuracy, target and achieved sparsity, steps, time, ledger and measured memory."""
    samplers = summary.get("samplers", {})
    return {
        "final_test_accuracy": summary["final_test_accuracy"],
        "target_sparsity": summary["target_sparsity"],
        "achieved_sparsity": summary["achieved_sparsity"],
        "target_reached": summary["target_reached"],
        "steps": summary["steps"],
        "skipped_steps": summary.get("skipped_steps"),
        "mask_updates": summary["schedule"].get("mask_updates"),
        "mean_step_time_s": summary["mean_step_time_s"],
        "ledger_total_bytes": summary["ledger"]["total"],
        "data_placement": summary["data_loader"].get("placement"),
        "measured": {name: {k: v for k, v in s.items() if k not in ("interval_s", "last_error")} for name, s in samplers.items()},
    }


def same_as_cpu(device_run: dict[str, Any], cpu_run: dict[str, Any]) -> dict[str, Any]:
    """Invariants a GPU run must share with the CPU run (raise when broken), and the accuracy gap."""
    if not device_run["target_reached"]:
        raise AssertionError(f"target {device_run['target_sparsity']} not reached: {device_run['achieved_sparsity']}")
    if device_run["achieved_sparsity"] != cpu_run["achieved_sparsity"]:
        raise AssertionError(f"achieved sparsity {device_run['achieved_sparsity']} here, {cpu_run['achieved_sparsity']} on CPU")
    if device_run["ledger_total_bytes"] != cpu_run["ledger_total_bytes"]:
        raise AssertionError(f"ledger {device_run['ledger_total_bytes']} B here, {cpu_run['ledger_total_bytes']} B on CPU")
    gap = device_run["final_test_accuracy"] - cpu_run["final_test_accuracy"]
    return {"accuracy_minus_cpu": round(gap, 3), "accuracy_within_5_points": abs(gap) <= 5.0}


def pruner_item(pruner: str) -> Item:
    def item(ctx: Context) -> dict[str, Any]:
        options = [*ctx_options(ctx), "--pruner", pruner]
        here = figures(prunekit_run(ctx, ctx.work / f"{pruner}-{ctx.device}", options))
        cpu = figures(prunekit_run(ctx, ctx.work / f"{pruner}-reference-cpu", options, device="cpu"))
        cpu_brief = {k: cpu[k] for k in ("final_test_accuracy", "achieved_sparsity", "mean_step_time_s")}
        return {"device": here, "cpu": cpu_brief, "compared": same_as_cpu(here, cpu)}

    return item


def ctx_options(ctx: Context) -> list[str]:
    return ctx.options or RESNET_RUN


def amp_bf16(ctx: Context) -> dict[str, Any]:
    if not torch.cuda.is_bf16_supported():
        raise Skip("this GPU does not support bf16")
    return figures(prunekit_run(ctx, ctx.work / "amp-bf16", [*ctx_options(ctx), "--pruner", "magnitude", "--amp"]))


def amp_fp16_overflow(ctx: Context) -> dict[str, Any]:
    """fp16 + GradScaler with infinite gradients at training step 3: one step skipped, nothing else moved."""
    options = [*ctx_options(ctx), "--pruner", "magnitude", "--optimizer", "adamwspam", "--amp"]
    out = ctx.work / "amp-fp16"
    run_child(ctx, [CHILD, "run", "--device", ctx.device, "--out", str(out), "--quiet", *options],
              env={"GPU_CHECK_FP16": "1", "GPU_CHECK_OVERFLOW_AT": "3"})  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    result = figures(summary)
    if summary.get("skipped_steps") != 1:
        raise AssertionError(f"the overflow step was not recorded as skipped (skipped_steps={summary.get('skipped_steps')})")
    return result


def data_placement(host: bool) -> Item:
    def item(ctx: Context) -> dict[str, Any]:
        out = ctx.work / ("data-host" if host else "data-device")
        env = {"GPU_CHECK_HOST_DATA": "1"} if host else {}
        run_child(ctx, [CHILD, "run", "--device", ctx.device, "--out", str(out), "--quiet", *ctx_options(ctx)], env=env)
        summary = json.loads((out / "summary.json").read_text())
        loader = summary["data_loader"]
        want = "host" if host else "device"
        if loader.get("placement") != want:
            raise AssertionError(f"data placed on {loader.get('placement')}, expected {want}")
        return figures(summary) | {"data_loader": loader, "data_wait_fraction": summary.get("data_wait_fraction")}

    return item


def _help(ctx: Context, *command: str) -> str:
    return run_child(ctx, ["-m", "prunekit.cli", *command, "--help"], timeout=60)


def compiled(ctx: Context) -> dict[str, Any]:
    if "--compile" not in _help(ctx, "run"):
        raise Skip("prunekit run --compile is not built yet (issue 21)")
    return figures(prunekit_run(ctx, ctx.work / "compile", [*ctx_options(ctx), "--pruner", "magnitude", "--compile"]))


def semi_structured(ctx: Context) -> dict[str, Any]:
    commands = _help(ctx)
    name = next((c for c in ("bench-inference", "inference") if f"  {c} " in commands), None)
    if name is None:
        raise Skip("no inference benchmark command yet (issue 22)")
    out = ctx.work / "nm"
    prunekit_run(ctx, out, [*ctx_options(ctx), "--pruner", "magnitude", "--sparsity", "0.5", "--pruner-opt", "structure=2:4"])
    printed = run_child(ctx, ["-m", "prunekit.cli", name, str(out), "--json"], timeout=120)
    return json.loads(printed)


def compact_state(ctx: Context) -> dict[str, Any]:
    if "state_storage" not in run_child(ctx, ["-m", "prunekit.cli", "list", "optimizers"], timeout=60):
        raise Skip("optimizer state_storage=compact is not built yet (issue 23)")
    options = [*ctx_options(ctx), "--pruner", "state", "--sparsity", "0.9"]
    dense = figures(prunekit_run(ctx, ctx.work / "state-dense", options))
    out: dict[str, Any] = {"dense": dense}
    for storage in ("compact", "compact-indexed"):
        made = figures(
            prunekit_run(ctx, ctx.work / f"state-{storage}", [*options, "--optimizer-opt", f"state_storage={storage}"])
        )
        if made["achieved_sparsity"] != dense["achieved_sparsity"]:
            raise AssertionError(f"{storage} reached {made['achieved_sparsity']}, dense {dense['achieved_sparsity']}")
        out[storage] = made
        out[f"{storage}_accuracy_equal"] = made["final_test_accuracy"] == dense["final_test_accuracy"]
    return out


def ddp_nccl(ctx: Context) -> dict[str, Any]:
    if not ctx.device.startswith("cuda"):
        raise Skip("nccl needs CUDA")
    gpus = torch.cuda.device_count()
    out = ctx.work / "ddp"
    run_child(ctx, ["-m", "prunekit.cli", "run", "--device", "cuda", "--nproc-per-node", str(gpus), "--out", str(out),
                    "--quiet", *ctx_options(ctx)], timeout=180)  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    dist = summary["distributed"]
    if dist.get("backend") != "nccl" or dist.get("world_size") != gpus:
        raise AssertionError(f"ran with backend {dist.get('backend')} on {dist.get('world_size')} processes")
    return figures(summary) | {"distributed": dist}


def items() -> list[tuple[str, Item]]:
    found: list[tuple[str, Item]] = [(f"pruner/{p}", pruner_item(p)) for p in PRUNERS]
    found += [("amp/bf16", amp_bf16), ("amp/fp16-overflow", amp_fp16_overflow)]
    found += [("data/device", data_placement(False)), ("data/pinned-host", data_placement(True))]
    found += [("compile", compiled), ("inference/2:4", semi_structured), ("compact-state", compact_state)]
    return [*found, ("ddp/nccl", ddp_nccl)]


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env |= {"gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count()}
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=290.0, help="stop starting items after this many seconds")
    parser.add_argument("--keep", type=Path, help="keep the run directories here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        reason = f"no CUDA device here (torch {torch.__version__}, built for CUDA {torch.version.cuda}): nothing to check"
        print(json.dumps(report([], environment()) | {"skipped": reason}, indent=2))
        print(f"gpu_check: {reason}", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        ctx = Context("cuda", ["torch", "nvidia"], work, python_with_prunekit(work, PLUGINS), budget_s=args.budget_s)
        document = report(run_items(items(), ctx), environment())
    print(json.dumps(document, indent=2))
    return 1 if document["counts"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
