"""Exact byte accounting of what a run keeps, counted from the tensors themselves.

Each storage is counted once (shared storage, views and tied weights are not
double counted). Categories: ``parameters``, ``buffers`` (batch-norm running
statistics), ``gradients``, ``optimizer_state`` (per-weight tensors such as
``exp_avg``, and with ``state_storage=compact`` their packed live positions), ``optimizer_scalars`` (0-dim bookkeeping such as Adam's ``step``),
``pruner_state`` (whatever ``Pruner.state_tensors()`` returns). Pruner state
named ``"<what>:<target name>"`` is also attributed to that prunable weight.

``pruner_transient`` is reported apart from the total: the peak bytes a pruner
held only around mask updates (``Pruner.transient_bytes()``, e.g. a copy of the
dense gradient on RigL's update steps), attributed the same way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunekit.core.sparsity.compact_state import compact_state
from prunekit.core.sparsity.targets import Target

CATEGORIES = ("parameters", "buffers", "gradients", "optimizer_state", "optimizer_scalars", "pruner_state")


class _Counter:
    def __init__(self) -> None:
        self.seen: set[tuple[str, int]] = set()

    def bytes(self, tensor: torch.Tensor) -> int:
        """Bytes of ``tensor``'s storage, or 0 if that storage was counted already."""
        storage = tensor.untyped_storage()
        key = (str(tensor.device), storage.data_ptr())
        if storage.data_ptr() == 0 or key in self.seen:
            return 0
        self.seen.add(key)
        return storage.nbytes()


def memory_ledger(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    pruner_state: dict[str, torch.Tensor],
    targets: list[Target],
    pruner_transient: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Bytes per category, totals, and a breakdown per prunable weight."""
    counter = _Counter()
    totals = dict.fromkeys(CATEGORIES, 0)
    keys = ("parameter", "gradient", "optimizer_state", "pruner_state", "pruner_transient")
    per_target = {t.name: dict.fromkeys(keys, 0) for t in targets}
    target_of = {id(t.parameter): t.name for t in targets}

    for param in model.parameters():
        n = counter.bytes(param)
        totals["parameters"] += n
        if id(param) in target_of:
            per_target[target_of[id(param)]]["parameter"] += n
    for buf in model.buffers():
        totals["buffers"] += counter.bytes(buf)
    for param in model.parameters():
        if param.grad is not None:
            n = counter.bytes(param.grad)
            totals["gradients"] += n
            if id(param) in target_of:
                per_target[target_of[id(param)]]["gradient"] += n
    if optimizer is not None:
        for owner_param, state in optimizer.state.items():
            for value in state.values():
                if not isinstance(value, torch.Tensor):
                    continue
                n = counter.bytes(value)
                if value.dim() == 0:
                    totals["optimizer_scalars"] += n
                    continue
                totals["optimizer_state"] += n
                if id(owner_param) in target_of:
                    per_target[target_of[id(owner_param)]]["optimizer_state"] += n
    compact = compact_state(optimizer)
    for owner_param, kept in (compact.tensors() if compact is not None else {}).items():
        n = sum(counter.bytes(t) for t in kept)  # state_storage=compact: the live positions, packed (-indexed: + indices)
        totals["optimizer_state"] += n
        if id(owner_param) in target_of:
            per_target[target_of[id(owner_param)]]["optimizer_state"] += n
    for name, tensor in pruner_state.items():
        n = counter.bytes(tensor)
        totals["pruner_state"] += n
        owner = name.split(":", 1)[-1]
        if owner in per_target:
            per_target[owner]["pruner_state"] += n

    transient = 0
    for name, n in (pruner_transient or {}).items():
        transient += int(n)
        owner = name.split(":", 1)[-1]
        if owner in per_target:
            per_target[owner]["pruner_transient"] += int(n)

    prunable = sum(t.numel() for t in targets)
    n_params = sum(p.numel() for p in model.parameters())
    return {
        **totals,
        "total": sum(totals.values()),
        "pruner_transient": transient,
        "prunable_weights": prunable,
        "parameter_count": n_params,
        "pruner_state_bytes_per_prunable_weight": totals["pruner_state"] / prunable if prunable else 0.0,
        "optimizer_state_bytes_per_parameter": totals["optimizer_state"] / n_params if n_params else 0.0,
        "per_prunable_weight": per_target,
    }
