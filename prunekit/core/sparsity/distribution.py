"""How a model-wide target sparsity is split across the prunable layers.

- ``global``: no fixed split; one threshold over all layers decides (scores compete
  across layers), so per-layer sparsities follow the scores;
- ``layer``: every layer at the target;
- ``uniform``: RigL's "uniform" (Evci et al. 2020, sec. 3): every layer at the target
  except the first prunable layer, which is kept dense (so the model as a whole is a
  little below the target: LeNet-5 at 90%, 150 of 61,470 weights dense, 89.78%);
- ``erk``: Erdős–Rényi-Kernel (Evci et al. 2020, "Rigging the Lottery", sec. 3): the
  density of a layer with weight shape ``(n_out, n_in, k_h, k_w)`` is proportional to
  ``sum(shape) / prod(shape)`` (for a linear layer ``(n_in + n_out) / (n_in n_out)``,
  Erdős–Rényi), scaled so the model keeps ``1 - sparsity`` of its prunable weights.
  A layer whose density would exceed 1 is kept dense and the others are rescaled,
  repeatedly, until none exceeds 1 (the RigL code's rule).

Per-layer prune counts are ``round(s_l * n_l)``: each layer as close to its share as
an integer allows, so the model's sparsity can differ from the target by at most half
a weight per layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DISTRIBUTIONS = ("global", "layer", "uniform", "erk")


def erk_densities(shapes: Sequence[Sequence[int]], sparsity: float) -> list[float]:
    """Per-layer densities (fractions kept) of the ERK distribution at ``sparsity``."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    numels = [math.prod(s) for s in shapes]
    raw = [sum(s) / n for s, n in zip(shapes, numels)]
    dense: set[int] = set()
    while True:
        free = [i for i in range(len(shapes)) if i not in dense]
        if not free:
            raise ValueError(f"ERK cannot reach sparsity {sparsity}: every layer would be dense")
        kept = (1.0 - sparsity) * sum(numels[i] for i in free) - sparsity * sum(numels[i] for i in dense)
        eps = kept / sum(raw[i] * numels[i] for i in free)
        if eps < 0:
            raise ValueError(f"ERK cannot reach sparsity {sparsity} with the dense layers it needs")
        top = max(raw[i] for i in free)
        if eps * top <= 1.0:
            break
        dense.update(i for i in free if raw[i] == top)
    return [1.0 if i in dense else eps * raw[i] for i in range(len(shapes))]


def layer_sparsities(shapes: Sequence[Sequence[int]], sparsity: float, distribution: str) -> list[float]:
    """Per-layer sparsities for ``layer``, ``uniform`` or ``erk`` (``global`` has no fixed split)."""
    if distribution == "layer":
        return [sparsity] * len(shapes)
    if distribution == "uniform":
        return [0.0] + [sparsity] * (len(shapes) - 1) if shapes else []
    if distribution == "erk":
        return [1.0 - d for d in erk_densities(shapes, sparsity)]
    raise ValueError(f"distribution must be 'layer', 'uniform' or 'erk' for fixed per-layer sparsities, got {distribution!r}")


def sparsity_groups(shapes: Sequence[Sequence[int]], sparsity: float, distribution: str) -> list[tuple[list[int], float]]:
    """The groups of layers one mask update ranks together, each with its sparsity:
    ``global`` one group of every layer at ``sparsity``, ``layer``, ``uniform`` and ``erk`` one group
    per layer at its share (:func:`layer_sparsities`)."""
    if distribution == "global":
        return [(list(range(len(shapes))), sparsity)]
    return [([i], s) for i, s in enumerate(layer_sparsities(shapes, sparsity, distribution))]


def prune_counts(shapes: Sequence[Sequence[int]], sparsity: float, distribution: str) -> list[int]:
    """Weights to prune per layer: ``round(s_l * n_l)`` with ``s_l`` from :func:`layer_sparsities`."""
    out = []
    for shape, s in zip(shapes, layer_sparsities(shapes, sparsity, distribution)):
        n = math.prod(shape)
        out.append(min(n, max(0, int(round(s * n)))))
    return out
