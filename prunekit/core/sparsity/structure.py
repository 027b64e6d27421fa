"""N:M structured sparsity: N kept of every M consecutive weights along the input dimension.

A group is M consecutive weights along dim 1 (a Linear weight's row; a convolution's input
channels, for each output channel and kernel position): what sparse tensor cores need (2:4).
A layer whose input dimension is no multiple of M cannot take the pattern and stays dense.

How it meets a gradual schedule: at every mask update the N highest-scoring kept weights of each
group are protected and the scheduled sparsity is taken, unstructured, from the rest; no group
ever drops below N. At sparsity 1 - N/M (the end of the ramp, or from step 0 with the constant
schedule) only the protected weights are left: every group holds exactly N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from prunekit.core.config.options import Option
from prunekit.core.sparsity.targets import Target

UNSTRUCTURED = "unstructured"

#: The ``structure`` option of every :class:`~prunekit.core.sparsity.pruner.MaskPruner`; declare it in its options.
STRUCTURE_OPTION = Option(
    "structure",
    str,
    UNSTRUCTURED,
    "unstructured, or N:M (2:4, 4:8): N kept of every M consecutive weights along the input dimension; "
    "target sparsity 1 - N/M; layers whose input dimension is no multiple of M stay dense",
)


def parse_structure(text: str) -> tuple[int, int] | None:
    """``"N:M"`` as ``(N, M)`` (0 < N < M), ``"unstructured"`` as None; ValueError otherwise."""
    if text == UNSTRUCTURED:
        return None
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or not 0 < int(parts[0]) < int(parts[1]):
        raise ValueError(f"structure must be 'unstructured' or N:M with 0 < N < M (2:4, 4:8), got {text!r}")
    return int(parts[0]), int(parts[1])


def structure_problem(options: dict[str, object], sparsity: float) -> str | None:
    """What is wrong with a pruner's ``structure`` option for target ``sparsity`` (None: nothing)."""
    text = options.get("structure", UNSTRUCTURED)
    try:
        nm = parse_structure(str(text))
    except ValueError as exc:
        return str(exc)
    if nm is None:
        return None
    n, m = nm
    if abs(sparsity - (1 - n / m)) > 1e-9:
        return f"structure {n}:{m} needs sparsity {1 - n / m:g} (1 - N/M), got {sparsity:g}"
    if options.get("scope", "global") not in ("global", "layer", "uniform"):
        return f"structure {n}:{m} needs scope global, layer or uniform (every layer at 1 - N/M), got {options.get('scope')!r}"
    return None


def takes_structure(shape: tuple[int, ...], m: int) -> bool:
    """Whether a weight of ``shape`` can be cut into groups of ``m`` along its input dimension."""
    return len(shape) >= 2 and shape[1] % m == 0


def groups(tensor: torch.Tensor, m: int) -> torch.Tensor:
    """``tensor`` as ``(groups, m)``: input dimension last, cut into runs of ``m`` (a copy if needed)."""
    moved = tensor.movedim(1, -1) if tensor.dim() > 2 else tensor
    return moved.reshape(-1, m)


def ungroup(grouped: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The inverse of :func:`groups` for a weight of ``shape``."""
    if len(shape) == 2:
        return grouped.reshape(shape)
    moved = (shape[0], *shape[2:], shape[1])
    return grouped.reshape(moved).movedim(-1, 1).contiguous()


def protected(score: torch.Tensor, keep: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The ``n`` highest-scoring kept weights of every group (ties: the first), as a mask of ``score``'s shape."""
    ranked = groups(torch.where(keep, score.float(), -torch.inf), m)
    top = ranked.topk(n, dim=1, sorted=False).indices
    chosen = torch.zeros_like(ranked, dtype=torch.bool).scatter_(1, top, True)
    return ungroup(chosen, tuple(score.shape))


def with_protection(score: torch.Tensor, keep: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """``score`` with each group's protected weights raised to +inf, so a threshold never prunes them."""
    out = score.float().clone() if score.dtype != torch.float32 else score.clone()
    return out.masked_fill_(protected(score, keep, n, m), torch.inf)


def is_n_of_m(mask: torch.Tensor, n: int, m: int) -> bool:
    """Every group of ``mask`` holds exactly ``n`` kept weights."""
    return bool((groups(mask, m).sum(1) == n).all())


class Structure:
    """A mask pruner's ``structure`` over its targets: which it covers, how scores are protected, its summary."""

    def __init__(self, text: str, targets: Sequence[Target]) -> None:
        self.text, self.targets = text, targets
        self.n_of_m = parse_structure(text)
        m = self.n_of_m[1] if self.n_of_m else 1
        #: Indices of the targets masks cover: with N:M those whose input dimension is a multiple of M.
        self.covered = [i for i, t in enumerate(targets) if takes_structure(tuple(t.parameter.shape), m)]

    def scorer(self, score: Callable[[int, Target], torch.Tensor], masks: Any, i: int) -> Callable[[], torch.Tensor]:
        """Target ``i``'s scores; with N:M its groups' protected weights raised to +inf (``masks.read(i)``: kept)."""
        target = self.targets[i]
        if self.n_of_m is None:
            return lambda: score(i, target)
        n, m = self.n_of_m
        return lambda: with_protection(score(i, target), masks.read(i), n, m)

    @torch.no_grad()
    def summary(self) -> dict[str, Any] | None:
        """The summary's ``structure`` record (None when unstructured)."""
        if self.n_of_m is None:
            return None
        zeros = sum(int((self.targets[i].weight == 0).sum()) for i in self.covered)
        total = sum(self.targets[i].weight.numel() for i in self.covered)
        return {
            "pattern": self.text,
            "along": "input dimension (Linear rows; convolution input channels per output channel and kernel position)",
            "dense_layers": [t.name for i, t in enumerate(self.targets) if i not in set(self.covered)],
            "structured_zeros": zeros,
            "structured_total": total,
            "achieved_sparsity_structured": zeros / total if total else 0.0,
        }
