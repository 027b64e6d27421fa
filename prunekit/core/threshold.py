"""Exact k-th smallest score over many tensors without concatenating them.

A mask update needs the global threshold over every prunable weight. The
original code concatenated all scores (4 bytes per weight, transient) and took
``kthvalue`` on a random 2% sample: nondeterministic and approximate. Here the
k-th smallest value is found exactly by a two-pass radix select over an
order-preserving integer view of the float32 scores: pass one counts the top 16
bits per layer, pass two counts the low 16 bits inside the chosen bucket. Extra
memory is a few tensors the size of the largest layer plus two 65,536-bin
histograms; scores are recomputed per layer by the caller's function.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

_BINS = 1 << 16


def _ordered_keys(scores: torch.Tensor) -> torch.Tensor:
    """int32 keys whose signed order equals the float order of ``scores``."""
    s = scores.detach().to(torch.float32).reshape(-1) + 0.0  # -0.0 becomes +0.0
    if torch.isnan(s).any():
        raise ValueError("pruning scores contain NaN")
    bits = s.view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _key_to_float(key: int) -> float:
    bits = key ^ 0x7FFFFFFF if key < 0 else key
    return torch.tensor([bits], dtype=torch.int32).view(torch.float32).item()


def _pick(counts: torch.Tensor, k: int) -> tuple[int, int]:
    """Bucket holding the k-th element (1-based) and k's rank inside it."""
    cumulative = counts.cumsum(0)
    bucket = int(torch.searchsorted(cumulative, torch.tensor([k], dtype=cumulative.dtype)).item())
    before = int(cumulative[bucket - 1].item()) if bucket > 0 else 0
    return bucket, k - before


def kth_smallest(scores: Callable[[], Iterable[torch.Tensor]], k: int) -> float:
    """The exact ``k``-th smallest value (1-based) over all tensors ``scores()`` yields.

    ``scores`` is called twice and must yield the same tensors (in any order)
    each time. Equals ``torch.cat([s.flatten() for s in scores()]).kthvalue(k)``.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    high = torch.zeros(_BINS, dtype=torch.int64)
    total = 0
    for s in scores():
        keys = _ordered_keys(s)
        total += keys.numel()
        high += torch.bincount((keys >> 16) + 32768, minlength=_BINS).cpu()
    if k > total:
        raise ValueError(f"k={k} exceeds the number of scores ({total})")
    bucket, rank = _pick(high, k)

    low = torch.zeros(_BINS, dtype=torch.int64)
    prefix = bucket - 32768
    for s in scores():
        keys = _ordered_keys(s)
        inside = keys[(keys >> 16) == prefix]
        if inside.numel():
            low += torch.bincount(inside & 0xFFFF, minlength=_BINS).cpu()
    low_bits, _ = _pick(low, rank)
    return _key_to_float((prefix << 16) | low_bits)


def threshold_for_sparsity(
    scores: Callable[[], Iterable[torch.Tensor]], numel: int, sparsity: float
) -> float:
    """Threshold such that ``score > threshold`` keeps ``1 - sparsity`` (up to ties).

    Returns ``-inf`` when nothing is to be pruned.
    """
    k = int(round(sparsity * numel))
    if k <= 0:
        return float("-inf")
    return kth_smallest(scores, min(k, numel))
