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

from typing import Callable, Iterable, Sequence

import torch

_BINS = 1 << 16


def _ordered_keys(scores: torch.Tensor, check_nan: bool = True) -> torch.Tensor:
    """int32 keys whose signed order equals the float order of ``scores``."""
    s = scores.detach().to(torch.float32).reshape(-1) + 0.0  # -0.0 becomes +0.0
    if check_nan and torch.isnan(s).any():
        raise ValueError("pruning scores contain NaN")
    bits = s.view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _high_histogram(keys: torch.Tensor) -> torch.Tensor:
    return torch.bincount((keys >> 16) + 32768, minlength=_BINS).cpu()


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
        high += _high_histogram(keys)
    if k > total:
        raise ValueError(f"k={k} exceeds the number of scores ({total})")
    bucket, rank = _pick(high, k)

    low = torch.zeros(_BINS, dtype=torch.int64)
    prefix = bucket - 32768
    for s in scores():
        keys = _ordered_keys(s, check_nan=False)
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


def select_masks(layer_scores: Sequence[Callable[[], torch.Tensor]], sparsity: float) -> list[torch.Tensor]:
    """Boolean keep-masks that prune the ``round(sparsity * N)`` lowest scores over all layers.

    ``layer_scores[i]()`` returns layer i's scores (recomputed on each call).
    The result equals ``score > kthvalue(cat(all scores), k)`` per layer, computed
    with two score passes: pass one builds the 16-bit bucket histogram; pass two
    writes each layer's mask for every score outside the k-th element's bucket and
    keeps the (few) scores inside it, from which the exact threshold is chosen.
    If that bucket holds more scores than the largest layer (a mass of ties), a
    low-bits histogram and a third pass are used instead, so extra memory stays
    of the order of the largest layer.
    """
    sizes: list[int] = []
    high = torch.zeros(_BINS, dtype=torch.int64)
    for fn in layer_scores:
        keys = _ordered_keys(fn())
        sizes.append(keys.numel())
        high += _high_histogram(keys)
    total = sum(sizes)
    k = int(round(sparsity * total))
    if k <= 0:
        return [fn() > float("-inf") for fn in layer_scores]
    bucket, rank = _pick(high, min(k, total))
    prefix = bucket - 32768
    store = int(high[bucket]) <= max(sizes)

    masks: list[torch.Tensor] = []
    inside_index: list[torch.Tensor] = []
    inside_low: list[torch.Tensor] = []
    low = torch.zeros(_BINS, dtype=torch.int64)
    for fn in layer_scores:
        score = fn()
        keys = _ordered_keys(score, check_nan=False)
        top = keys >> 16
        masks.append((top > prefix).view(score.shape))
        inside = top == prefix
        if store:
            index = inside.nonzero().squeeze(1)
            inside_index.append(index)
            inside_low.append(keys[index] & 0xFFFF)
        else:
            low += torch.bincount(keys[inside] & 0xFFFF, minlength=_BINS).cpu()

    if store:
        candidates = torch.cat(inside_low)
        low_bits = int(candidates.kthvalue(rank).values)
        for mask, index, bits in zip(masks, inside_index, inside_low):
            mask.view(-1)[index] = bits > low_bits
        return masks

    low_bits, _ = _pick(low, rank)
    threshold = (prefix << 16) | low_bits
    for mask, fn in zip(masks, layer_scores):
        keys = _ordered_keys(fn(), check_nan=False)
        mask.view(-1).logical_or_(((keys >> 16) == prefix) & (keys > threshold))
    return masks
