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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from prunekit.core.data import ImageTensors, InMemory, in_memory_tensors


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


class EpochCounter:
    """The epoch a DistributedSampler orders next, with a generator's ``get_state``/``set_state``,
    so checkpoints save and restore it like the single-process loaders' generators."""

    def __init__(self) -> None:
        self.epoch = 0

    def get_state(self) -> torch.Tensor:
        return torch.tensor([self.epoch], dtype=torch.int64)

    def set_state(self, new_state: torch.Tensor) -> None:
        self.epoch = int(new_state[0])

    def next_epoch(self, sampler: Any) -> None:
        sampler.set_epoch(self.epoch)
        self.epoch += 1


class ShardedBatches:
    """This rank's batches of in-memory data (see :class:`~prunekit.core.data.InMemory`), in
    DistributedSampler's seeded order; augmentation drawn per epoch from a generator seeded
    with (seed, rank, epoch). ``skip`` batches of the next epoch are left out (a run resumed mid-epoch).
    """

    def __init__(self, dataset: Dataset[Any], batch_size: int, dist: Dist, seed: int, device: torch.device | str = "cpu") -> None:
        from torch.utils.data.distributed import DistributedSampler

        self.data = InMemory(dataset, torch.device(device))
        self.info = self.data.info
        self.batch_size, self.seed, self.rank = batch_size, seed, dist.rank
        self.sampler: DistributedSampler[int] = DistributedSampler(dataset, dist.world_size, dist.rank, shuffle=True, seed=seed)
        self.generator = EpochCounter()
        self.skip = 0

    def __len__(self) -> int:
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.generator.epoch
        self.generator.next_epoch(self.sampler)
        index = torch.tensor(list(self.sampler), dtype=torch.long).to(self.data.data_device)
        params = self.data.draw(len(index), torch.Generator().manual_seed(hash((self.seed, self.rank, epoch)) & 0xFFFF_FFFF_FFFF))
        first, self.skip = self.skip * self.batch_size, 0
        for start in range(first, len(index), self.batch_size):
            end = start + self.batch_size
            yield self.data.batch(index[start:end], None if params is None else params[start:end])


class EpochSampler:
    """A DistributedSampler that advances its epoch each time a DataLoader iterates it;
    ``skip`` leading indices of the next epoch are left out (a run resumed mid-epoch)."""

    def __init__(self, sampler: Any) -> None:
        self.sampler, self.generator, self.skip = sampler, EpochCounter(), 0

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[int]:
        self.generator.next_epoch(self.sampler)
        first, self.skip = self.skip, 0
        return iter(list(self.sampler)[first:])


def train_loader(
    dataset: Dataset[Any], batch_size: int, dist: Dist, seed: int, device: torch.device | str = "cpu", workers: int = 0
) -> ShardedBatches | DataLoader[Any]:
    """This rank's training batches (every rank the same number of steps; the sampler pads)."""
    if in_memory_tensors(dataset) is not None:
        return ShardedBatches(dataset, batch_size, dist, seed, device)
    pin_memory = torch.device(device).type == "cuda"
    from torch.utils.data.distributed import DistributedSampler

    sampler = EpochSampler(DistributedSampler(dataset, dist.world_size, dist.rank, shuffle=True, seed=seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )


def eval_shard(dataset: Dataset[Any], dist: Dist) -> Dataset[Any]:
    """Test examples rank, rank + N, ...: disjoint shards covering every example once (no padding)."""
    if not dist.enabled:
        return dataset
    indices = list(range(dist.rank, len(dataset), dist.world_size))  # type: ignore[arg-type]
    if isinstance(dataset, TensorDataset):
        return TensorDataset(*(t[indices] for t in dataset.tensors))
    if isinstance(dataset, ImageTensors):
        return dataset.subset(torch.tensor(indices, dtype=torch.long))
    return Subset(dataset, indices)


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
