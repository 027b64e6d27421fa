"""Exact selections shared by the pruners: the k lowest scores, seeded random scores."""

from __future__ import annotations

import hashlib

import torch


def lowest(score: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of exactly ``k`` positions of a 1-D ``score`` with the smallest values.

    Ties at the k-th value are broken by position (the first tied positions are
    chosen), so the choice is deterministic on every device. Positions that must
    not be chosen score ``+inf`` (``k`` must not exceed the finite ones).
    """
    if k <= 0:
        return torch.zeros_like(score, dtype=torch.bool)
    threshold = score.kthvalue(k).values
    chosen = score < threshold
    need = k - int(chosen.sum())
    if need > 0:
        tie = score == threshold
        tie &= tie.cumsum(0) <= need
        chosen |= tie
    return chosen


def stream_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed for one (purpose, step, layer): stateless, the same on every rank."""
    text = repr((seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def uniform(shape: torch.Size, device: torch.device, seed: int, *parts: object) -> torch.Tensor:
    """Uniform [0, 1) scores drawn on the CPU (the same values on every device), then moved."""
    generator = torch.Generator().manual_seed(stream_seed(seed, *parts))
    return torch.rand(shape, generator=generator).to(device)


def normal(shape: torch.Size, device: torch.device, seed: int, *parts: object) -> torch.Tensor:
    """Standard normal values drawn on the CPU (the same on every device), then moved."""
    generator = torch.Generator().manual_seed(stream_seed(seed, *parts))
    return torch.randn(shape, generator=generator).to(device)


def run_seed() -> int:
    """A seed drawn from torch's global generator: follows the run's ``--seed``."""
    return int(torch.randint(0, 2**31 - 1, (1,)).item())
