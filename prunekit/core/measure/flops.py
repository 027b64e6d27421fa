"""FLOPs of a model, dense and over its nonzero weights, counted by ``torch.utils.flop_counter``.

``FlopCounterMode`` counts the matmuls and convolutions of one forward pass per module, 2 FLOPs
per multiply-add (biases, activations, norms and pooling are not counted). A prunable layer's
nonzero FLOPs are its dense FLOPs times its weight's density (the fraction of nonzero weights the
forward pass uses), the convention of ShrinkBench and RigL; what lies outside the prunable layers
counts as dense.

Training FLOPs follow the density each step really had (the masks its forward pass used): a step
costs 3x the nonzero forward FLOPs per example (forward, backward to activations, backward to
weights); a step on which the pruner needs the dense gradient (a pruner method
``dense_gradient_step(step) -> bool``, optional: RigL's topology updates) costs 2x nonzero + 1x
dense, as Evci et al. 2020 (appendix H) count it. :class:`TrainingFlops` keeps sums that are linear
in each layer's FLOPs, so the forward pass is counted once, at the end of the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunekit.core.sparsity.targets import Target, measure_sparsity

COUNTED_BY = "torch.utils.flop_counter: 2 FLOPs per multiply-add of matmuls and convolutions, per example"


@dataclass(frozen=True)
class ForwardFlops:
    """Dense forward FLOPs per example: the whole model and each prunable weight's layer."""

    total: int
    per_layer: dict[str, int]

    def nonzero(self, densities: dict[str, float]) -> float:
        """Forward FLOPs per example when each prunable layer keeps ``densities[name]`` of its weights."""
        return self.total - sum(flops * (1.0 - densities[name]) for name, flops in self.per_layer.items())


@torch.no_grad()
def count_forward(model: nn.Module, example: torch.Tensor, targets: Sequence[Target]) -> ForwardFlops:
    """Count one example's forward pass (eval mode; the model's mode is restored)."""
    names = {id(module): name for name, module in model.named_modules()}
    root = type(model).__name__
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(example[:1])
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()
    per_layer = {}
    for target in targets:
        name = names[id(target.module)]
        per_layer[target.name] = int(sum(counts.get(f"{root}.{name}" if name else root, {}).values()))
    return ForwardFlops(int(counter.get_total_flops()), per_layer)


@torch.no_grad()
def densities(targets: Sequence[Target]) -> dict[str, float]:
    """Each prunable weight's fraction of nonzeros, counted from the tensor the forward pass uses."""
    return {t.name: float(torch.count_nonzero(t.weight).item()) / t.weight.numel() for t in targets}


class TrainingFlops:
    """Sums over the steps of a run, from which :meth:`total` gives its training FLOPs.

    Per step of ``e`` examples with ``a`` = 3 (2 on a dense-gradient step) times the nonzero
    forward and ``b`` = 0 (1) times the dense forward: ``weighted`` += e (a + b) and, per layer,
    ``pruned[l]`` += e a (1 - density_l); the total is ``weighted * dense - sum_l pruned[l] * flops_l``.
    """

    def __init__(self, targets: Sequence[Target], state: dict[str, Any] | None = None) -> None:
        self.targets = targets
        self.weighted = float((state or {}).get("weighted", 0.0))
        self.pruned = {t.name: float((state or {}).get("pruned", {}).get(t.name, 0.0)) for t in targets}
        # The densities counted at the last mask change: saved, so a resumed run counts the same (weights
        # regrown at zero by RigL/SET become nonzero later, and counting again mid-interval would differ).
        saved: Any = (state or {}).get("densities")
        names = {t.name for t in targets}
        valid = isinstance(saved, dict) and set(saved) == names and all(isinstance(v, float) for v in saved.values())
        self._densities: dict[str, float] | None = {str(k): float(v) for k, v in saved.items()} if valid else None

    def masks_changed(self) -> None:
        """The next step's forward pass uses new masks: count the weights again."""
        self._densities = None

    def add_step(self, examples: int, dense_gradient: bool = False) -> None:
        """One optimizer step over ``examples`` examples, at the densities its forward pass had."""
        if self._densities is None:
            self._densities = densities(self.targets)
        a = 2.0 if dense_gradient else 3.0
        self.weighted += examples * (a + (1.0 if dense_gradient else 0.0))
        for name, density in self._densities.items():
            self.pruned[name] += examples * a * (1.0 - density)

    def total(self, forward: ForwardFlops) -> float:
        return self.weighted * forward.total - sum(p * forward.per_layer[name] for name, p in self.pruned.items())

    def state_dict(self) -> dict[str, Any]:
        densities = dict(self._densities) if self._densities is not None else None
        return {"weighted": self.weighted, "pruned": dict(self.pruned), "densities": densities}


def flops_section(model: nn.Module, targets: Sequence[Target], example: torch.Tensor, training: TrainingFlops) -> dict[str, Any]:
    """The summary's ``flops`` record for the model as it is now (per example)."""
    forward = count_forward(model, example, targets)
    density = densities(targets)
    nonzero = forward.nonzero(density)
    counts = measure_sparsity(model, list(targets))  # every parameter, prunable ones by their forward value
    nonzero_params = int(counts["all_total"]) - int(counts["all_zeros"])
    return {
        "counted_by": COUNTED_BY,
        "forward_dense": forward.total,
        "forward_nonzero": round(nonzero),
        "theoretical_speedup": forward.total / nonzero if nonzero else None,
        "compression_ratio": counts["all_total"] / nonzero_params if nonzero_params else None,
        "training_total": round(training.total(forward)),
        "per_layer": {
            name: {"forward_dense": flops, "density": density[name], "forward_nonzero": round(flops * density[name])}
            for name, flops in forward.per_layer.items()
        },
    }
