"""One run on several processes: DistributedDataParallel under torchrun.

``torchrun --nproc-per-node N $(which prunekit) run ...`` (or ``prunekit run
--nproc-per-node N``) starts N processes with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
set; :func:`setup` joins them (nccl on CUDA, gloo on CPU). What stays exact:

- training data: each rank reads its share of one seeded permutation per epoch
  (``DistributedSampler``, seed = the run's seed, ``set_epoch``); ``--batch-size`` is
  per process, so the global batch is ``batch_size * world_size``. The learning rate
  is not rescaled.
- gradients are all-reduced in backward, so masks, scores, weights and optimizer state
  come out identical on every rank without further communication.
- evaluation: rank r scores test examples r, r+N, r+2N, ... (no padding) and the sums
  are all-reduced, so each test example counts exactly once.
- only rank 0 writes the run directory and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``world_size`` 1 means a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False  # setup() created the process group, so teardown() destroys it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self, batch_size: int) -> dict[str, Any]:
        return {
            "world_size": self.world_size,
            "backend": self.backend,
            "batch_size_per_process": batch_size,
            "global_batch_size": batch_size * self.world_size,
            "lr_scaled": False,
        }


SINGLE = Dist()


def from_environment() -> Dist:
    """The torchrun environment of this process (``SINGLE`` outside torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes; each CUDA rank gets its local device."""
    dist = from_environment()
    if not dist.enabled:
        return dist, device
    import torch.distributed as td

    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    owns = not td.is_initialized()
    if owns:
        td.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    else:
        backend = td.get_backend()
    return Dist(dist.rank, dist.world_size, dist.local_rank, backend, owns), device


def teardown(dist: Dist) -> None:
    if dist.owns_group:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()


def broadcast(dist: Dist, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not dist.enabled:
        return value
    import torch.distributed as td

    box = [value]
    td.broadcast_object_list(box, src=0)
    return box[0]


def gather(dist: Dist, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not dist.enabled:
        return [value]
    import torch.distributed as td

    out: list[Any] = [None] * dist.world_size
    td.all_gather_object(out, value)
    return out


def all_reduce_sum(dist: Dist, *tensors: torch.Tensor) -> None:
    """Sum tensors over ranks, in place."""
    if dist.enabled:
        import torch.distributed as td

        for t in tensors:
            td.all_reduce(t, op=td.ReduceOp.SUM)


def wrap(dist: Dist, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module the training loop calls: DDP on several ranks, else the model itself."""
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def sampler_summaries(
    dist: Dist, own: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, dict[str, Any]]] | None]:
    """Sampler summaries with each figure's peak and mean the maximum over ranks, and every rank's own."""
    ranks = gather(dist, own)
    if not dist.enabled:
        return own, None
    merged: dict[str, dict[str, Any]] = {}
    for name, info in own.items():
        entry = dict(info)
        figures = {}
        for key, fig in info.get("figures", {}).items():
            values = [r[name]["figures"][key] for r in ranks if key in r.get(name, {}).get("figures", {})]
            figures[key] = {stat: max(v[stat] for v in values) for stat in fig if all(stat in v for v in values)}
        entry["figures"] = figures
        for key, value in info.items():  # a sampler's own exact figures, e.g. peak_rss_bytes
            if key.endswith("_bytes") and isinstance(value, (int, float)):
                entry[key] = max(r.get(name, {}).get(key) or 0 for r in ranks)
        entry["over_ranks"] = "max"
        merged[name] = entry
    return merged, ranks


def all_finite(dist: Dist, loss: torch.Tensor) -> bool:
    """Whether the loss is finite on every rank (so all ranks take the same branch)."""
    flag = torch.isfinite(loss.detach()).to(torch.int32)
    if dist.enabled:
        import torch.distributed as td

        td.all_reduce(flag, op=td.ReduceOp.MIN)
    return bool(flag.item())


def sync_buffers(dist: Dist, model: torch.nn.Module) -> None:
    """Rank 0's buffers (e.g. BatchNorm running statistics) on every rank, so all evaluate one model."""
    if dist.enabled:
        import torch.distributed as td

        for buffer in model.buffers():
            td.broadcast(buffer, src=0)


def interleave(dist: Dist, shard: torch.Tensor) -> torch.Tensor:
    """The whole of a 1-d tensor sharded as :func:`eval_shard` does (rank r holds items r, r+N, ...)."""
    if not dist.enabled:
        return shard
    shards = gather(dist, shard)
    full = torch.empty(sum(len(s) for s in shards), dtype=shard.dtype)
    for rank, part in enumerate(shards):
        full[rank :: dist.world_size] = part
    return full


def any_rank(dist: Dist, flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (e.g. a stop request), so all ranks act together."""
    if not dist.enabled:
        return flag
    import torch.distributed as td

    device = torch.device("cuda", torch.cuda.current_device()) if td.get_backend() == "nccl" else None
    value = torch.tensor(int(flag), device=device)  # nccl reduces CUDA tensors only
    td.all_reduce(value, op=td.ReduceOp.MAX)
    return bool(value.item())
