"""Where a compacted layer's live weights sit in its compact optimizer-state tensors.

Order: the weight's memory order (row-major, or ``channels_last``'s), the order in
which torch's kernels walk it; see :class:`Layout` for why the kernel's vector
width (:func:`kernel_lanes`) matters too.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch


def memory_order(tensor: torch.Tensor) -> torch.Tensor:
    """A 1-D view of ``tensor`` in the order its elements sit in memory (row-major or ``channels_last``)."""
    if tensor.is_contiguous():
        return tensor.view(-1)
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last):
        return tensor.permute(0, 2, 3, 1).view(-1)
    raise ValueError("state_storage=compact needs weights laid out row-major or channels_last")


def mask_in_memory_order(param: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A row-major keep-mask of ``param`` reordered like :func:`memory_order` of ``param``."""
    mask = mask.reshape(param.shape).to(torch.bool)
    if param.is_contiguous():
        return mask.reshape(-1)
    return mask.permute(0, 2, 3, 1).reshape(-1)


class Layout:
    """Where a layer's live weights sit in its compact tensors (``lanes`` from :func:`kernel_lanes`).

    A CPU kernel that steps a tensor in vectors of ``lanes`` elements and its last
    ``n % lanes`` one at a time may round the two differently (torch's fused Adam
    does). So the live weights of the dense vector body come first, then zeros up
    to a multiple of ``lanes`` (never updated: zero weight, gradient and state),
    then those of the dense scalar tail: each live weight takes the path it takes dense.
    """

    def __init__(self, live: torch.Tensor, lanes: int, index_dtype: torch.dtype = torch.int64) -> None:
        n = live.numel()
        cut = n - n % lanes
        index = live.nonzero().view(-1)  # held while the layout is: 8 B per live weight of the layer (int32: 4 B)
        if index_dtype == torch.int32 and n < 2**31:
            index = index.to(torch.int32)
        self.n_body = int(torch.searchsorted(index, torch.tensor(cut, device=index.device)))
        self.body, self.tail = index[: self.n_body], index[self.n_body :]
        self.pad = -self.n_body % lanes
        self.size = index.numel() + self.pad

    def gather(self, flat: torch.Tensor) -> torch.Tensor:
        """The compact tensor of a dense flat tensor."""
        out = flat.new_zeros(self.size)
        torch.index_select(flat, 0, self.body, out=out[: self.n_body])
        torch.index_select(flat, 0, self.tail, out=out[self.n_body + self.pad :])
        return out

    def scatter_(self, flat: torch.Tensor, values: torch.Tensor) -> None:
        """Write compact ``values`` back into the live positions of the dense flat tensor."""
        # index_copy_ takes int64 indices only (and is 4x quicker than index_put_ with int32 ones)
        flat.index_copy_(0, self.body.long(), values[: self.n_body])
        flat.index_copy_(0, self.tail.long(), values[self.n_body + self.pad :])

    def index_tensors(self) -> tuple[torch.Tensor, ...]:
        """The index tensors the layout holds (one buffer: body and tail are views of it)."""
        return (self.body, self.tail)

    def expand(self, values: torch.Tensor, n: int) -> torch.Tensor:
        """A new dense flat tensor: ``values`` at the live positions, zero elsewhere."""
        out = values.new_zeros(n)
        self.scatter_(out, values)
        return out


_LANES: dict[tuple[Any, ...], int] = {}


@torch.no_grad()
def kernel_lanes(optimizer: torch.optim.Optimizer, like: torch.Tensor) -> int:
    """How many elements ``optimizer``'s kernel steps together on ``like``'s device and dtype (1: no scalar tail).

    Measured once: 32 parameters of 127 equal elements each take one step; the
    first element that comes out different from the first of its tensor starts the tail.
    """
    defaults = dict(optimizer.defaults)
    key = (type(optimizer), like.device.type, like.dtype, defaults.get("fused"), defaults.get("foreach"))
    if key not in _LANES:
        g = torch.Generator().manual_seed(0)
        values = torch.randn(32, 3, generator=g, dtype=torch.float64).to(like.dtype)
        params = [torch.nn.Parameter(torch.full((127,), float(v[0]), dtype=like.dtype, device=like.device)) for v in values]
        for p, v in zip(params, values):
            p.grad = torch.full_like(p, float(v[1]))
        accepted = inspect.signature(type(optimizer)).parameters
        defaults = {k: v for k, v in defaults.items() if k in accepted} | {"lr": 1e-2, "weight_decay": 0.1}
        probe = type(optimizer)(params, **defaults)
        for _ in range(3):
            probe.step()
        first = 127
        for p in params:
            for t in (p, *(v for v in probe.state[p].values() if v.dim() > 0)):
                differs = (t != t[0]).nonzero()
                if differs.numel():
                    first = min(first, int(differs[0]))
        _LANES[key] = next((lanes for lanes in (2, 4, 8, 16, 32, 64) if 127 - 127 % lanes == first), 1)
    return _LANES[key]
