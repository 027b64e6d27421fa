"""How a mask pruner stores its keep-masks: ``bool``, ``bits`` or ``implicit``.

- ``bool``: one ``torch.bool`` per prunable weight (1 B).
- ``bits``: the masks packed 8 to a byte (``uint8``, 0.125 B per weight); element
  ``j`` of a layer is bit ``j % 8`` of byte ``j // 8``.
- ``implicit``: no tensor at all (0 B). The mask *is* "the weight is not exactly
  zero". This holds because pruned weights, their gradients and their optimizer
  moments are held at exactly zero and masks only grow, so a pruned weight never
  moves. The rule, checked so that ``implicit`` is identical to ``bool`` or the
  run stops with one line (:class:`ImplicitMaskError`): a layer holds no exact
  zero before its first mask (a zero-initialised layer under step-0 masks is
  refused), and a layer's count of non-zero weights stays
  exactly what the last mask kept after every step (more: the optimizer moved
  pruned weights, e.g. with per-weight state the core does not zero; fewer: a
  live weight landed exactly on 0.0, which ``bool`` would keep training).
  One ``count_nonzero`` per layer and step; an int per layer is kept.

Transient memory: applying a mask (gradient masking, enforcement, zeroing
optimizer moments) works chunk by chunk (``CHUNK`` elements: 256 KiB of
``bool`` scratch); ``read`` materialises one layer's ``bool`` mask (1 B per
weight of that layer) and a mask update (:func:`~prunekit.core.sparsity.threshold.update_masks_`)
reads and writes one layer at a time, also with ``scope=global``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from prunekit.core.sparsity.blocks import blocks, contiguous_bool, flat
from prunekit.core.sparsity.targets import Target
from prunekit.core.sparsity.threshold import CHUNK, apply_mask_

STORAGES = ("bool", "bits", "implicit")


class ImplicitMaskError(RuntimeError):
    """``mask_storage=implicit`` cannot represent this run's masks exactly (one-line message)."""


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
        param = self.targets[i].parameter
        return contiguous_bool(param.shape, param.device) if mask is None else mask

    def write(self, i: int, mask: torch.Tensor) -> None:
        """Store layer ``i``'s new ``bool`` keep-mask (row-major, whatever the weight's memory format)."""
        self.stored[i] = mask.contiguous()

    def before_update(self) -> str | None:
        """Why the next mask update cannot be stored exactly, or None (explicit masks: never)."""
        return None

    def check(self) -> int | None:
        """After a step: the first layer whose stored mask no longer holds, or None (explicit masks: never)."""
        return None

    def problem(self, i: int) -> str:
        """Why layer ``i`` failed :meth:`check`, in a few words."""
        return ""

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


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` (``bool``, row-major) packed 8 to a byte: element ``j`` is bit ``j % 8`` of byte ``j // 8``."""
    flat_mask = mask.reshape(-1)
    n = flat_mask.numel()
    packed = torch.zeros((n + 7) // 8, dtype=torch.uint8, device=mask.device)
    weights = (1 << torch.arange(8, dtype=torch.uint8, device=mask.device)).view(1, 8)
    for a, b in _chunks(n):  # CHUNK is a multiple of 8: chunks start on byte boundaries
        bits = flat_mask[a:b]
        if bits.numel() % 8:
            bits = torch.cat([bits, bits.new_zeros(8 - bits.numel() % 8)])
        packed[a // 8 : (b + 7) // 8] = (bits.view(-1, 8).to(torch.uint8) * weights).sum(1, dtype=torch.uint8)
    return packed


def unpack_bits(packed: torch.Tensor, n: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """The first ``n`` bits of ``packed`` as flat ``bool`` (in ``out``, >= 8 per byte, if given)."""
    out = torch.empty(packed.numel() * 8, dtype=torch.bool, device=packed.device) if out is None else out
    wide = out.view(torch.uint8)[: packed.numel() * 8].view(-1, 8)
    torch.bitwise_right_shift(packed.unsqueeze(1), torch.arange(8, dtype=torch.uint8, device=packed.device), out=wide)
    wide.bitwise_and_(1)
    return out[:n]


class BitMasks(MaskStore):
    """Masks packed 8 to a byte (:func:`pack_bits`): 0.125 B per weight."""

    kind = "bits"

    def _unpack(self, packed: torch.Tensor, n: int, out: torch.Tensor) -> torch.Tensor:
        return unpack_bits(packed, n, out)

    def read(self, i: int) -> torch.Tensor:
        packed = self.stored[i]
        param = self.targets[i].parameter
        if packed is None:
            return contiguous_bool(param.shape, param.device)
        return unpack_bits(packed, param.numel()).view(param.shape)

    def write(self, i: int, mask: torch.Tensor) -> None:
        self.stored[i] = pack_bits(mask)

    def apply_(self, i: int, tensor: torch.Tensor) -> None:
        packed = self.stored[i]
        if packed is None:
            return
        row_major = flat(tensor)
        if row_major is not None:
            for a, b in _chunks(row_major.numel()):
                keep = self._unpack(packed[a // 8 : (b + 7) // 8], b - a, self._bool_scratch(CHUNK, tensor.device))
                row_major[a:b].mul_(keep)
            return
        for index, a, b in blocks(tensor.shape, CHUNK - 16):  # channels_last: a block may start mid-byte
            bits = self._unpack(packed[a // 8 : (b + 7) // 8], b - a + a % 8, self._bool_scratch(CHUNK, tensor.device))
            part = tensor[index]
            part.mul_(bits[a % 8 :].view(part.shape))


class ImplicitMasks(MaskStore):
    """No mask tensor: a weight is kept if and only if it is not exactly zero (0 B per weight)."""

    kind = "implicit"

    def __init__(self, targets: list[Target]) -> None:
        super().__init__(targets)
        self.present = [False] * len(targets)
        self.live: list[int] = [0] * len(targets)  # non-zero weights the last mask kept

    def has(self, i: int) -> bool:
        return self.present[i]

    def read(self, i: int) -> torch.Tensor:
        param = self.targets[i].parameter.detach()
        out = contiguous_bool(param.shape, param.device)
        return torch.ne(param, 0, out=out) if self.present[i] else out

    def write(self, i: int, mask: torch.Tensor) -> None:
        """Zero the weights ``mask`` prunes: from now on they are the mask."""
        self._set(i, mask)

    def before_update(self) -> str | None:
        """Before a mask update: a layer with no mask yet must hold no exact zero (implicit could not keep one)."""
        fresh = [i for i in range(len(self.targets)) if not self.present[i]]
        if not fresh:
            return None
        counts = torch.stack([torch.count_nonzero(self.targets[i].parameter.detach()) for i in fresh]).tolist()
        for i, now in zip(fresh, counts):
            target = self.targets[i]
            if now < target.parameter.numel():
                return (
                    f"mask_storage=implicit cannot mask {target.name}: {target.parameter.numel() - now} of its weights "
                    "are exactly 0.0 before its first mask (a zero-initialised layer?), which implicit cannot tell "
                    "from pruned ones; use mask_storage=bool or bits"
                )
        return None

    def _set(self, i: int, mask: torch.Tensor) -> None:
        self.present[i] = True
        apply_mask_(self.targets[i].parameter.detach(), mask)
        self.live[i] = int(mask.sum())

    def check(self) -> int | None:
        """The first layer whose count of non-zero weights is not what its last mask kept (one sync for all)."""
        layers = [i for i in range(len(self.targets)) if self.present[i]]
        if not layers:
            return None
        counts = torch.stack([torch.count_nonzero(self.targets[i].parameter.detach()) for i in layers])
        expected = torch.tensor([self.live[i] for i in layers], device=counts.device)
        wrong = torch.nonzero(counts != expected).flatten().tolist()
        return layers[wrong[0]] if wrong else None

    def problem(self, i: int) -> str:
        target = self.targets[i]
        now = int(torch.count_nonzero(target.parameter.detach()))
        if now > self.live[i]:
            return f"{now - self.live[i]} pruned weights of {target.name} became non-zero after an optimizer step"
        return (
            f"{self.live[i] - now} live weights of {target.name} landed exactly on 0.0, "
            "which implicit would count as pruned (bool keeps training them)"
        )

    def apply_(self, i: int, tensor: torch.Tensor) -> None:
        param = self.targets[i].parameter.detach()
        if not self.present[i] or tensor.data_ptr() == param.data_ptr():
            return  # a weight is its own mask: pruned weights are zero already
        row_major, weights = flat(tensor), flat(param)
        if row_major is not None and weights is not None:
            for a, b in _chunks(row_major.numel()):
                keep = self._bool_scratch(b - a, tensor.device)
                torch.ne(weights[a:b], 0, out=keep)
                row_major[a:b].mul_(keep)
            return
        for index, _, _ in blocks(tensor.shape, CHUNK):
            tensor[index].mul_(param[index] != 0)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load(self, masks: list[torch.Tensor | None]) -> None:
        """Restore checkpointed masks (the weights are the checkpoint's, so kept zeros are not refused here)."""
        if len(masks) != len(self.targets):
            raise ValueError("mask count does not match the prunable set")
        self.present = [False] * len(self.targets)
        for i, (target, mask) in enumerate(zip(self.targets, masks)):
            if mask is not None:
                self._set(i, mask.to(device=target.parameter.device, dtype=torch.bool))


def make_store(kind: str, targets: list[Target]) -> MaskStore:
    """The store for ``mask_storage=kind``."""
    stores = {"bool": MaskStore, "bits": BitMasks, "implicit": ImplicitMasks}
    if kind not in stores:
        raise ValueError(f"mask_storage must be one of {', '.join(STORAGES)}, got {kind!r}")
    return stores[kind](targets)
