"""Dynamic sparse training: RigL (Evci et al. 2020) and SET (Mocanu et al. 2018).

Both keep every layer's number of active weights constant from step 0 (a random
mask with the layer's ``layer`` or ``erk`` share of the target). Every
``delta_t`` optimizer steps, up to ``end_fraction`` of training, each layer
drops ``n = floor(drop_fraction * active)`` of its active weights with the
smallest magnitude and grows ``n`` weights among those not active after the
drop (a weight just dropped may come back unchanged): RigL grows the largest
|dense gradient| of this step, SET grows at random. ``drop_fraction`` is
``alpha`` cosine-decayed to 0 at ``end_fraction`` (or constant). Newly grown
weights start at exactly zero, with their optimizer moments zeroed. Ties are
broken by position. SET's ``variant=mocanu`` follows Mocanu et al. instead: each
layer drops ``floor(drop_fraction * n)`` of its ``n`` positive and, separately, of
its negative active weights, those closest to zero (active exact zeros too), and
grows as many at random positions not kept, starting at random values ``N(0, 0.1²)``
(``randn() / 10``, as their set_mlp_sparse_data_structures.py), moments zeroed.

Order within an update step (step ``t`` a multiple of ``delta_t``): backward;
``before_step`` copies |gradient| of every prunable weight (RigL only; the
dense gradient, pruned positions included, which is the ``.grad`` the backward
pass always computes here) and masks the gradient; the optimizer steps with the
old mask; ``update_masks`` drops by the updated weights and grows; the copy is
freed. (The reference RigL code skips the optimizer step on update steps; here
it is taken, once every ``delta_t`` steps.)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from prunekit.api import MASKED_OPTIMIZER_STATE, MaskPruner, Target, prune_counts
from prunekit_dst.select import lowest, normal, run_seed, uniform


def row_major(weight: torch.Tensor) -> torch.Tensor:
    """A float32 row-major 1-D copy of ``weight`` (one copy whatever its memory format)."""
    return weight.detach().to(torch.float32, memory_format=torch.contiguous_format, copy=True).view(-1)


class DynamicSparsePruner(MaskPruner):
    """Constant per-layer sparsity with drop-and-grow every ``delta_t`` steps.

    Its parameters are the options ``DYNAMIC_OPTIONS`` declares (scope ``layer`` or
    ``erk``, bounds); the core checks them before the pruner is built.
    """

    grow_by_gradient = False
    variant = "magnitude"

    def __init__(
        self,
        targets: list[Target],
        scope: str = "erk",
        delta_t: int = 100,
        alpha: float = 0.3,
        end_fraction: float = 0.75,
        decay: str = "cosine",
        seed: int | None = None,
    ) -> None:
        super().__init__(targets, scope=scope)
        self.delta_t, self.alpha, self.end_fraction, self.decay = delta_t, alpha, end_fraction, decay
        self.seed = run_seed() if seed is None else seed
        self._grow_scores: list[torch.Tensor | None] = [None] * len(targets)
        self._transient: dict[str, int] = {}
        self.topology_updates = 0

    # -- cadence ----------------------------------------------------------
    def end_step(self) -> int | None:
        """Last step with a topology update: ``round(end_fraction * total_steps)``."""
        return None if self.plan is None else int(round(self.end_fraction * self.plan.total_steps))

    def is_topology_step(self, step: int) -> bool:
        end = self.end_step()
        return end is not None and 0 < step <= end and step % self.delta_t == 0

    def is_update_step(self, step: int) -> bool:
        return super().is_update_step(step) if step == 0 else self.is_topology_step(step)

    def dense_gradient_step(self, step: int) -> bool:
        """Whether step ``step`` computes the dense gradient (RigL's topology steps): counted in training FLOPs."""
        return self.grow_by_gradient and self.is_topology_step(step)

    def drop_fraction(self, step: int) -> float:
        """``alpha``, or ``alpha / 2 * (1 + cos(pi * step / end))`` for the cosine decay."""
        end = self.end_step()
        if self.decay == "constant" or not end:
            return self.alpha
        return self.alpha * 0.5 * (1.0 + math.cos(math.pi * min(step, end) / end))

    # -- hooks --------------------------------------------------------------
    @torch.no_grad()
    def before_step(self, step: int) -> None:
        if self.grow_by_gradient and self.is_topology_step(step) and self.masks[0] is not None:
            for i, target in enumerate(self.targets):
                grad = target.parameter.grad
                score = None if grad is None else grad.detach().abs()
                self._grow_scores[i] = score
                held = 0 if score is None else score.untyped_storage().nbytes()
                key = f"dense_grad:{target.name}"
                self._transient[key] = max(self._transient.get(key, 0), held)
        super().before_step(step)

    @torch.no_grad()
    def update_masks(self, sparsity: float, step: int) -> None:
        shapes = [tuple(t.parameter.shape) for t in self.targets]
        prune = prune_counts(shapes, sparsity, self.scope)
        try:
            if any(m is None for m in self.masks):
                self._initialise(prune)
            elif self.is_topology_step(step) and all(self._pruned(i) == p for i, p in enumerate(prune)):
                self._drop_and_grow(step)
            else:
                self._resize(prune, step)
        finally:
            self._grow_scores = [None] * len(self.targets)
        self.zero_optimizer_state()
        self.enforce()

    def transient_bytes(self) -> dict[str, int]:
        return dict(self._transient)

    def state_dict(self) -> dict[str, Any]:
        # the transient peak too: a run resumed after its last topology update reports it like one never stopped
        return super().state_dict() | {
            "seed": self.seed,
            "topology_updates": self.topology_updates,
            "transient": dict(self._transient),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.seed = int(state["seed"])
        self.topology_updates = int(state.get("topology_updates", 0))
        self._transient = {str(k): int(v) for k, v in (state.get("transient") or {}).items()}

    # -- topology -------------------------------------------------------------
    def _pruned(self, i: int) -> int:
        mask = self.masks[i]
        assert mask is not None, "masks exist once the pruner has started"
        return mask.numel() - int(mask.sum())

    def _initialise(self, prune: list[int]) -> None:
        """A random mask per layer with exactly ``prune[i]`` weights pruned."""
        for i, target in enumerate(self.targets):
            param = target.parameter
            scores = uniform(param.shape, param.device, self.seed, "init", i).view(-1)
            self.masks[i] = (~lowest(scores, prune[i])).view(param.shape)

    def _grow_score(self, i: int, step: int, tag: str) -> torch.Tensor:
        """Higher is grown first: |dense gradient| (RigL, when copied) or uniform noise."""
        param = self.targets[i].parameter
        held = self._grow_scores[i]
        if self.grow_by_gradient and held is not None:
            return held.float().reshape(-1)
        return uniform(param.shape, param.device, self.seed, tag, step, i).view(-1)

    def _drop_and_grow(self, step: int) -> None:
        fraction = self.drop_fraction(step)
        if not all(bool(torch.isfinite(g).all()) for g in self._grow_scores if g is not None):
            return  # a non-finite gradient (e.g. an AMP overflow step): keep the topology
        for i, target in enumerate(self.targets):
            held_mask = self.masks[i]
            assert held_mask is not None, "masks exist once the pruner has started"
            mask = held_mask.view(-1)
            if self.variant == "mocanu":
                dropped = self._drop_signed(row_major(target.parameter), mask, fraction)
                n = int(dropped.sum())
            else:
                n = int(int(mask.sum()) * fraction)
                dropped = lowest(row_major(target.parameter).abs_().masked_fill_(~mask, math.inf), n)
            if n == 0:
                continue
            kept = mask & ~dropped
            grown = lowest(self._grow_score(i, step, "grow").neg().masked_fill_(kept, math.inf), n)
            if self.variant == "mocanu":  # every grown weight is new, at a random value
                self._grow(i, grown, normal(target.parameter.shape, target.parameter.device, self.seed, "values", step, i) / 10)
            else:
                self._grow(i, grown & ~mask)
            torch.bitwise_or(kept, grown, out=mask)
        self.topology_updates += 1

    @staticmethod
    def _drop_signed(weights: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
        """Mocanu et al.: the ``fraction`` of positive and of negative active weights closest to zero (and active zeros)."""
        positive, negative = mask & (weights > 0), mask & (weights < 0)
        dropped = mask & (weights == 0)
        dropped |= lowest(weights.masked_fill(~positive, math.inf), int(int(positive.sum()) * fraction))
        dropped |= lowest(weights.neg().masked_fill_(~negative, math.inf), int(int(negative.sum()) * fraction))
        return dropped

    def _resize(self, prune: list[int], step: int) -> None:
        """Reach a new per-layer count: drop the smallest |w| or grow (masks may shrink or grow)."""
        for i, target in enumerate(self.targets):
            held_mask = self.masks[i]
            assert held_mask is not None, "masks exist once the pruner has started"
            mask = held_mask.view(-1)
            extra = prune[i] - self._pruned(i)
            if extra > 0:
                mask &= ~lowest(row_major(target.parameter).abs_().masked_fill_(~mask, math.inf), extra)
            elif extra < 0:
                grown = lowest(self._grow_score(i, step, "resize").neg().masked_fill_(mask, math.inf), -extra)
                self._grow(i, grown)
                mask |= grown

    def _grow(self, i: int, new: torch.Tensor, values: torch.Tensor | None = None) -> None:
        """New connections start at zero (or at ``values``), with zero optimizer moments (any memory format)."""
        param = self.targets[i].parameter
        where = new.view(param.shape)
        if values is None:
            param.detach().masked_fill_(where, 0)
        else:
            param.detach()[where] = values.to(param.dtype)[where]
        state = self.optimizer.state.get(param, {}) if self.optimizer is not None else {}
        for key in MASKED_OPTIMIZER_STATE:
            value = state.get(key)
            if isinstance(value, torch.Tensor) and value.shape == param.shape:
                value.masked_fill_(where, 0)


class RigLPruner(DynamicSparsePruner):
    """RigL: grow the inactive weights with the largest |dense gradient|."""

    grow_by_gradient = True


class SETPruner(DynamicSparsePruner):
    """SET: grow at random (seeded, stateless: the same on every rank and after a resume).

    ``variant``: ``magnitude`` (as RigL's code: drop the smallest |w|, grow at zero) or
    ``mocanu`` (Mocanu et al. 2018: drop positive and negative weights separately, grow at random values).
    """

    def __init__(
        self,
        targets: list[Target],
        scope: str = "erk",
        delta_t: int = 100,
        alpha: float = 0.3,
        end_fraction: float = 0.75,
        decay: str = "cosine",
        seed: int | None = None,
        variant: str = "magnitude",
    ) -> None:
        super().__init__(targets, scope, delta_t, alpha, end_fraction, decay, seed)
        self.variant = variant
