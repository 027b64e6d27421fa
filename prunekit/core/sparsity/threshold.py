"""Exact k-th smallest score over many tensors without concatenating them.

A mask update needs the global threshold over every prunable weight. The
original code concatenated all scores (4 bytes per weight, transient) and took
``kthvalue`` on a random 2% sample: nondeterministic and approximate. Here the
k-th smallest value is found exactly by a two-pass radix select over an
order-preserving integer view of the float32 scores: pass one counts the top 16
bits per layer, pass two counts the low 16 bits inside the chosen bucket. Keys
are built in place, chunk by chunk, in one copy of a layer's scores; scores are
recomputed per layer by the caller's function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import torch

from prunekit.core.sparsity.blocks import blocks, flat

_BINS = 1 << 16


def _signed_order(key: int) -> int:
    """An unsigned-order key (see ``_Keys``) as the signed-order int32 key."""
    signed = key ^ (1 << 31)
    return signed - (1 << 32) if signed >= 1 << 31 else signed


def _key_to_float(key: int) -> float:
    signed = _signed_order(key)
    bits = signed ^ 0x7FFFFFFF if signed < 0 else signed
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
    keys: _Keys | None = None
    high = torch.zeros(_BINS, dtype=torch.int64)
    total = 0
    for score in scores():
        keys = keys or _Keys(CHUNK, score.device, copy=True)
        bits = keys(score, None)
        total += bits.numel()
        for a, b in _chunks(bits.numel()):
            high += torch.bincount(keys.high(bits[a:b]), minlength=_BINS).cpu()
    if k > total:
        raise ValueError(f"k={k} exceeds the number of scores ({total})")
    assert keys is not None  # k <= total: scores() yielded at least one tensor
    bucket, rank = _pick(high, k)

    low = torch.zeros(_BINS, dtype=torch.int64)
    for score in scores():
        bits = keys(score, None)
        for a, b in _chunks(bits.numel()):
            chunk = bits[a:b]
            in_bucket = keys.flags[: b - a]
            torch.eq(keys.high(chunk), bucket, out=in_bucket)
            inside = chunk[in_bucket]
            if inside.numel():
                low += torch.bincount(inside.bitwise_and_(0xFFFF), minlength=_BINS).cpu()
    low_bits, _ = _pick(low, rank)
    return _key_to_float((bucket << 16) | low_bits)


def threshold_for_sparsity(scores: Callable[[], Iterable[torch.Tensor]], numel: int, sparsity: float) -> float:
    """Threshold such that ``score > threshold`` keeps ``1 - sparsity`` (up to ties).

    Returns ``-inf`` when nothing is to be pruned.
    """
    k = int(round(sparsity * numel))
    if k <= 0:
        return float("-inf")
    return kth_smallest(scores, min(k, numel))


CHUNK = 1 << 18  # elements per in-place step: bounds every temporary to ~1 MiB
_SIGN = -0x80000000


def _chunks(n: int) -> Iterable[tuple[int, int]]:
    for start in range(0, n, CHUNK):
        yield start, min(start + CHUNK, n)


def apply_mask_(tensor: torch.Tensor, mask: torch.Tensor) -> None:
    """``tensor *= mask`` in place, chunk by chunk, whatever the layouts of both (``channels_last`` too).

    ``tensor.mul_(bool_mask)`` would first materialise the whole mask as floats.
    """
    flat_tensor, keep = flat(tensor), flat(mask)
    if flat_tensor is not None and keep is not None:
        for a, b in _chunks(flat_tensor.numel()):
            flat_tensor[a:b].mul_(keep[a:b])
        return
    for index, _, _ in blocks(tensor.shape, CHUNK):  # strided views of both: no layer-sized copy
        tensor[index].mul_(mask[index])


class _Keys:
    """Turns a layer's scores into unsigned-order int32 keys, in place, with pruned -> 0.

    Unsigned-order keys: float bits with the non-sign bits of negatives flipped,
    then the sign bit flipped, so that comparing them as unsigned 32-bit numbers
    orders them like the floats; 0 is below every (non-NaN) score, so
    multiplying by the keep-mask sends pruned positions to the bottom.
    """

    def __init__(self, largest: int, device: torch.device, copy: bool) -> None:
        self.copy = copy
        size = min(CHUNK, largest)
        self.scratch = torch.empty(size, dtype=torch.int32, device=device)
        self.flags = torch.empty(size, dtype=torch.bool, device=device)

    def __call__(self, score: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        # a row-major float32 copy (one copy also for a channels_last score), or the fresh score itself
        s = score.detach().to(torch.float32, memory_format=torch.contiguous_format, copy=self.copy).view(-1)
        if s.numel() and torch.isnan(s.max()):
            raise ValueError("pruning scores contain NaN")
        bits = s.view(torch.int32)
        flat_keep = keep.reshape(-1) if keep is not None else None
        for a, b in _chunks(bits.numel()):
            s[a:b].add_(0.0)  # -0.0 -> +0.0
            chunk, t = bits[a:b], self.scratch[: b - a]
            torch.bitwise_right_shift(chunk, 31, out=t)  # -1 for negatives, else 0
            t.bitwise_and_(0x7FFFFFFF)
            chunk.bitwise_xor_(t).bitwise_xor_(_SIGN)
            if flat_keep is not None:
                chunk.mul_(flat_keep[a:b])
        return bits

    def high(self, chunk: torch.Tensor) -> torch.Tensor:
        """Top 16 bits (0..65535) of a chunk of keys, in the scratch buffer."""
        t = self.scratch[: chunk.numel()]
        torch.bitwise_right_shift(chunk, 16, out=t)
        return t.bitwise_and_(0xFFFF)


class LayerMasks(Protocol):
    """Keep-masks read and written one layer at a time (``prunekit.core.sparsity.masks``' stores)."""

    def __len__(self) -> int: ...
    def numel(self, i: int) -> int: ...
    def read(self, i: int) -> torch.Tensor: ...
    def write(self, i: int, mask: torch.Tensor) -> None: ...


class _InPlace(list[torch.Tensor]):
    """Boolean mask tensors, updated in place (``write`` has nothing to do)."""

    def numel(self, i: int) -> int:
        return self[i].numel()

    def read(self, i: int) -> torch.Tensor:
        return self[i]

    def write(self, i: int, mask: torch.Tensor) -> None:
        if mask is not self[i]:  # a row-major copy of a mask in another layout: copy the result back
            self[i].copy_(mask)


def update_masks_(
    scores: Sequence[Callable[[], torch.Tensor]],
    masks: Sequence[torch.Tensor] | LayerMasks,
    sparsity: float,
    fresh_scores: bool = False,
) -> None:
    """Prune exactly the ``k = round(sparsity * N)`` lowest scores over all layers, in place.

    ``scores[i]()`` returns layer i's scores (recomputed on each call, never
    kept); ``masks[i]`` is its boolean keep-mask (all True before any pruning),
    or ``masks`` is a :class:`LayerMasks` whose ``read(i)`` gives layer i's
    boolean mask and ``write(i, mask)`` stores it: only one layer's mask is then
    held as ``bool`` at a time.
    Masks only grow: already-pruned positions count as the lowest scores and
    stay pruned (if more than ``k`` are pruned already, nothing changes).
    Ties at the k-th score are broken by position (layer order, then
    flattened index: the first tied positions are pruned), so exactly ``k``
    positions end up pruned, the same on every device. Keys are built in place in a copy of each
    layer's scores, or in the scores themselves when ``fresh_scores`` says the
    score functions return new tensors that nothing else holds.

    Two score passes: the first builds a histogram of the keys' top 16 bits;
    the second writes every mask outside the k-th element's bucket and keeps
    the few positions inside it, from which the exact threshold is chosen. If
    that bucket holds more entries than the largest layer (a mass of ties), a
    histogram of the low 16 bits and a third pass are used instead. Apart from
    the masks, the only layer-sized temporary is one copy of a layer's scores.
    Tie ranks are exact integer running counts (``cumsum`` of booleans), so
    the choice is deterministic on CPU and GPU alike.
    """
    out: LayerMasks = _InPlace(masks) if isinstance(masks, Sequence) else masks
    sizes = [out.numel(i) for i in range(len(out))]
    total = sum(sizes)
    k = min(int(round(sparsity * total)), total)
    if k <= 0 or not total:
        return
    keys: _Keys | None = None

    def layer_keys(i: int, mask: torch.Tensor) -> torch.Tensor:
        nonlocal keys
        score = scores[i]()
        if keys is None:
            keys = _Keys(max(sizes), score.device, copy=not fresh_scores)
        return keys(score, mask)

    high = torch.zeros(_BINS, dtype=torch.int64)
    for i in range(len(out)):
        bits = layer_keys(i, out.read(i))
        assert keys is not None
        for a, b in _chunks(bits.numel()):
            high += torch.bincount(keys.high(bits[a:b]), minlength=_BINS).cpu()
    bucket, rank = _pick(high, k)
    if bucket == 0:  # the k-th lowest is an already-pruned position: nothing more to prune
        return

    store = int(high[bucket]) <= max(sizes)
    low = torch.zeros(_BINS, dtype=torch.int64)
    inside: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    assert keys is not None
    for i in range(len(out)):
        layer = out.read(i).contiguous()
        bits = layer_keys(i, layer)
        mask = layer.view(-1)
        found = []
        for a, b in _chunks(bits.numel()):
            chunk = bits[a:b]
            top = keys.high(chunk)
            torch.ge(top, bucket, out=mask[a:b])  # inside the bucket: provisionally kept
            in_bucket = keys.flags[: b - a]
            torch.eq(top, bucket, out=in_bucket)
            where = in_bucket.nonzero().squeeze(1)
            if where.numel():
                lows = chunk[where].bitwise_and_(0xFFFF)
                low += torch.bincount(lows, minlength=_BINS).cpu()
                if store:
                    found.append((where.add_(a), lows))
        out.write(i, layer)
        inside.append(found)
        del layer, mask  # one layer's mask at a time where the store materialises them
    low_bits, ties = _pick(low, rank)  # ties: how many scores equal to the k-th are pruned
    pruned_ties = _TieCounter(ties)

    if store:
        for i, found in enumerate(inside):
            if not found:
                continue
            layer = out.read(i).contiguous()
            row_major = layer.view(-1)
            for where, lows in found:
                row_major[where] = (lows > low_bits) | pruned_ties.kept(lows == low_bits)
            out.write(i, layer)
            del layer, row_major
        return
    threshold = _signed_order((bucket << 16) | low_bits)
    for i in range(len(out)):
        layer = out.read(i).contiguous()
        row_major = layer.view(-1)
        bits = keys(scores[i](), layer)  # masks now hold True inside the bucket: old keep-mask there
        for a, b in _chunks(bits.numel()):
            in_bucket = keys.flags[: b - a]
            torch.eq(keys.high(bits[a:b]), bucket, out=in_bucket)
            signed = bits[a:b].bitwise_xor_(_SIGN)
            keep = (signed > threshold) | pruned_ties.kept(signed == threshold, keys.scratch[: b - a])
            row_major[a:b] &= ~in_bucket | keep
        out.write(i, layer)
        del layer, row_major


class _TieCounter:
    """Decides which positions tied at the threshold stay, in position order.

    The first ``prune`` tied positions seen (over all calls) are pruned, the
    rest kept. Ranks are an integer ``cumsum``: exact and deterministic.
    """

    def __init__(self, prune: int) -> None:
        self.left = prune  # tied positions still to prune

    def kept(self, tie: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
        """``tie`` with the positions to prune cleared (in place); ``scratch``: int32 of tie's size."""
        if self.left <= 0 or not tie.numel():
            return tie
        rank = torch.cumsum(tie, 0, dtype=torch.int32, out=scratch)  # 1-based rank of each tied position
        seen = int(rank[-1])
        tie &= rank > self.left
        self.left -= min(seen, self.left)
        return tie
