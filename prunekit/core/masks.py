"""How a mask pruner stores its keep-masks: ``bool``, ``bits`` or ``implicit``.

- ``bool``: one ``torch.bool`` per prunable weight (1 B).
- ``bits``: the masks packed 8 to a byte (``uint8``, 0.125 B per weight); element
  ``j`` of a layer is bit ``j % 8`` of byte ``j // 8``.
- ``implicit``: no tensor at all (0 B). The mask *is* "the weight is not exactly
  zero". This holds because pruned weights, their gradients and their optimizer
  moments are held at exactly zero and masks only grow, so a pruned weight never
  moves; it needs an optimizer that leaves a weight with zero gradient and zero
  state at zero (every built-in one does). A live weight that lands exactly on
  0.0 counts as pruned from then on.

Transient memory: applying a mask (gradient masking, enforcement, zeroing
optimizer moments) works chunk by chunk (``CHUNK`` elements: 256 KiB of
``bool`` scratch); ``read`` materialises one layer's ``bool`` mask (1 B per
weight of that layer) and a mask update (:func:`~prunekit.core.threshold.update_masks_`)
reads and writes one layer at a time, also with ``scope=global``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from prunekit.core.targets import Target
from prunekit.core.threshold import CHUNK, apply_mask_

STORAGES = ("bool", "bits", "implicit")
BYTES_PER_WEIGHT = {"bool": 1.0, "bits": 0.125, "implicit": 0.0}


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, CHUNK):
        yield start, min(start + CHUNK, n)


class MaskStore:
    """The keep-masks of a list of targets; ``None`` until a layer's first mask update."""

    kind = "bool"

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets
        self.stored: list[torch.Tensor | None] = [None] * len(targets)
        self._scratch: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def numel(self, i: int) -> int:
        return self.targets[i].parameter.numel()

    def has(self, i: int) -> bool:
        return self.stored[i] is not None

    def read(self, i: int) -> torch.Tensor:
        """Layer ``i``'s keep-mask as ``bool`` (all True before its first update)."""
        mask = self.stored[i]
        return torch.ones_like(self.targets[i].parameter, dtype=torch.bool) if mask is None else mask

    def write(self, i: int, mask: torch.Tensor) -> None:
        """Store layer ``i``'s new ``bool`` keep-mask."""
        self.stored[i] = mask

    def apply_(self, i: int, tensor: torch.Tensor) -> None:
        """``tensor *= mask_i`` in place, chunk by chunk (nothing if layer ``i`` has no mask yet)."""
        mask = self.stored[i]
        if mask is not None:
            apply_mask_(tensor, mask)

    def tensors(self) -> dict[str, torch.Tensor]:
        """What the store keeps, named ``mask:<target>`` for the ledger."""
        return {f"mask:{t.name}": m for t, m in zip(self.targets, self.stored) if m is not None}

    def state(self) -> list[torch.Tensor | None]:
        """Every layer's mask as ``bool`` (or None), for checkpoints (the same whatever the storage)."""
        return [self.read(i).clone() if self.has(i) else None for i in range(len(self.targets))]

    def load(self, masks: list[torch.Tensor | None]) -> None:
        if len(masks) != len(self.targets):
            raise ValueError("mask count does not match the prunable set")
        for i, (target, mask) in enumerate(zip(self.targets, masks)):
            self.stored[i] = None
            if mask is not None:
                self.write(i, mask.to(device=target.parameter.device, dtype=torch.bool).clone())

    def _bool_scratch(self, n: int, device: torch.device) -> torch.Tensor:
        if self._scratch is None or self._scratch.device != device:
            self._scratch = torch.empty(CHUNK, dtype=torch.bool, device=device)
        return self._scratch[:n]


class BitMasks(MaskStore):
    """Masks packed 8 to a byte: 0.125 B per weight."""

    kind = "bits"

    def __init__(self, targets: list[Target]) -> None:
        super().__init__(targets)
        self._shifts: dict[torch.device, torch.Tensor] = {}

    def _shift(self, device: torch.device) -> torch.Tensor:
        if device not in self._shifts:
            self._shifts[device] = torch.arange(8, dtype=torch.uint8, device=device)
        return self._shifts[device]

    def _unpack(self, packed: torch.Tensor, n: int, out: torch.Tensor) -> torch.Tensor:
        """Bits of ``packed`` as ``n`` bools in ``out`` (uint8 0/1 viewed as bool)."""
        wide = out.view(torch.uint8)[: packed.numel() * 8].view(-1, 8)
        torch.bitwise_right_shift(packed.unsqueeze(1), self._shift(packed.device), out=wide)
        wide.bitwise_and_(1)
        return out[:n]

    def read(self, i: int) -> torch.Tensor:
        packed = self.stored[i]
        param = self.targets[i].parameter
        if packed is None:
            return torch.ones_like(param, dtype=torch.bool)
        n = param.numel()
        out = torch.empty(packed.numel() * 8, dtype=torch.bool, device=param.device)
        return self._unpack(packed, n, out).view(param.shape)

    def write(self, i: int, mask: torch.Tensor) -> None:
        flat = mask.reshape(-1)
        n = flat.numel()
        packed = torch.zeros((n + 7) // 8, dtype=torch.uint8, device=mask.device)
        weights = (1 << self._shift(mask.device)).view(1, 8)
        for a, b in _chunks(n):  # CHUNK is a multiple of 8: chunks start on byte boundaries
            bits = flat[a:b]
            if bits.numel() % 8:
                bits = torch.cat([bits, bits.new_zeros(8 - bits.numel() % 8)])
            packed[a // 8 : (b + 7) // 8] = (bits.view(-1, 8).to(torch.uint8) * weights).sum(1, dtype=torch.uint8)
        self.stored[i] = packed

    def apply_(self, i: int, tensor: torch.Tensor) -> None:
        packed = self.stored[i]
        if packed is None:
            return
        flat = tensor.view(-1)
        for a, b in _chunks(flat.numel()):
            keep = self._unpack(packed[a // 8 : (b + 7) // 8], b - a, self._bool_scratch(CHUNK, tensor.device))
            flat[a:b].mul_(keep)


class ImplicitMasks(MaskStore):
    """No mask tensor: a weight is kept if and only if it is not exactly zero (0 B per weight)."""

    kind = "implicit"

    def __init__(self, targets: list[Target]) -> None:
        super().__init__(targets)
        self.present = [False] * len(targets)

    def has(self, i: int) -> bool:
        return self.present[i]

    def read(self, i: int) -> torch.Tensor:
        param = self.targets[i].parameter.detach()
        return param != 0 if self.present[i] else torch.ones_like(param, dtype=torch.bool)

    def write(self, i: int, mask: torch.Tensor) -> None:
        """Zero the weights ``mask`` prunes: from now on they are the mask."""
        self.present[i] = True
        apply_mask_(self.targets[i].parameter.detach(), mask)

    def apply_(self, i: int, tensor: torch.Tensor) -> None:
        param = self.targets[i].parameter.detach()
        if not self.present[i] or tensor.data_ptr() == param.data_ptr():
            return  # a weight is its own mask: pruned weights are zero already
        flat, weights = tensor.view(-1), param.view(-1)
        for a, b in _chunks(flat.numel()):
            keep = self._bool_scratch(b - a, tensor.device)
            torch.ne(weights[a:b], 0, out=keep)
            flat[a:b].mul_(keep)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load(self, masks: list[torch.Tensor | None]) -> None:
        self.present = [False] * len(self.targets)
        super().load(masks)


def make_store(kind: str, targets: list[Target]) -> MaskStore:
    """The store for ``mask_storage=kind``."""
    stores = {"bool": MaskStore, "bits": BitMasks, "implicit": ImplicitMasks}
    if kind not in stores:
        raise ValueError(f"mask_storage must be one of {', '.join(STORAGES)}, got {kind!r}")
    return stores[kind](targets)
