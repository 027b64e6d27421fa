"""Bounded in-place work on tensors of any memory layout (``channels_last`` included).

``tensor.view(-1)`` needs a contiguous tensor; a weight in ``channels_last``
format is not one. :func:`blocks` instead cuts a shape into index blocks of at
most about ``limit`` elements, each covering one run ``[start, end)`` of the
row-major (logical) flat order, so ``tensor[index]`` is a strided view of any
tensor of that shape (no copy) and ``flat_mask[start:end]`` is the matching
part of a contiguous mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

Index = tuple[int | slice, ...]


def blocks(shape: Sequence[int], limit: int) -> Iterator[tuple[Index, int, int]]:
    """``(index, start, end)`` covering ``shape`` in row-major order, blocks of <= ``limit`` elements where a row allows."""
    yield from _blocks(tuple(shape), max(1, limit), 0)


def _blocks(shape: tuple[int, ...], limit: int, offset: int) -> Iterator[tuple[Index, int, int]]:
    if not shape:
        yield (), offset, offset + 1
        return
    row = math.prod(shape[1:])
    if row <= limit or len(shape) == 1:
        rows = max(1, limit // max(row, 1))
        for a in range(0, shape[0], rows):
            b = min(a + rows, shape[0])
            yield (slice(a, b),), offset + a * row, offset + b * row
        return
    for i in range(shape[0]):  # one row is larger than the limit: split it
        for rest, start, end in _blocks(shape[1:], limit, offset + i * row):
            yield (i, *rest), start, end


def flat(tensor: torch.Tensor) -> torch.Tensor | None:
    """A 1-D view of ``tensor`` in row-major order, or None where its layout has none."""
    return tensor.view(-1) if tensor.is_contiguous() else None


def contiguous_bool(shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """An all-True ``bool`` mask in row-major layout (masks never follow a weight's memory format)."""
    return torch.ones(tuple(shape), dtype=torch.bool, device=device)
