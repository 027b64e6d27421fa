"""``prunekit bench-inference RUN_DIR``: the run's final model, dense against its sparse forms, timed here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click


@click.command("bench-inference")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--batch-size", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("--warmup", type=click.IntRange(1, 10_000), default=10, show_default=True, help="batches run first, not counted")
@click.option("--repeats", type=click.IntRange(5, 100_000), default=50, show_default=True, help="timed batches")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N")
@click.option("--json", "as_json", is_flag=True, help="print the measurement as one JSON object")
def bench_inference(run_dir: Path, batch_size: int, warmup: int, repeats: int, device: str, as_json: bool) -> None:
    """Latency (median, p90 per batch) and memory (weights; a batch's peak) of RUN_DIR's final model in each form.

    CPU: dense, and CSR for pruned Linear layers; CUDA: dense fp16, and 2:4
    semi-structured Linear layers. Convolutions stay dense (torch has no sparse
    convolution kernel). Random inputs of the dataset's shape; nothing is written.
    """
    import torch

    from prunekit.core.run.building import resolve_device
    from prunekit.errors import UsageError
    from prunekit.export.source import final_model
    from prunekit.inference import compare

    where = resolve_device(device)
    if where.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device here.")
    final = final_model(run_dir)
    splits = final.built.splits
    example = torch.randn(
        batch_size, splits.in_channels, splits.image_size, splits.image_size, generator=torch.Generator().manual_seed(0)
    )
    result = compare(final.built.model, example.to(where), warmup, repeats)
    result |= {"run_dir": str(run_dir), "load_average_1_5_15": list(os.getloadavg()), "torch_threads": torch.get_num_threads()}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{run_dir} on {result['device']}, batch {batch_size}, {repeats} timed batches after {warmup} warm-up")
    click.echo(
        f"load average {', '.join(f'{x:.2f}' for x in result['load_average_1_5_15'])}; {torch.get_num_threads()} torch threads"
    )
    for name, r in result["forms"].items():
        peak = f", peak allocated {r['peak_allocated_bytes']:,} B" if "peak_allocated_bytes" in r else ""
        if "peak_batch_bytes" in r:
            peak = f", a batch's peak allocations beyond the weights {r['peak_batch_bytes']:,} B"
        click.echo(
            f"  {name:22s} median {r['median_ms']:.3f} ms, p90 {r['p90_ms']:.3f} ms per batch "
            f"({r['latency_ratio_to_dense']:.2f}x dense); weights {r['weight_bytes']:,} B ({r['weight_bytes_ratio_to_dense']:.2f}x){peak}"
        )
    for name, why in result["skipped"].items():
        click.echo(f"  {name:22s} skipped: {why}")
    click.echo(f"  note: {result['note']}")
