"""Hard (top-k) movement pruning, Sanh, Wolf & Rush (2020).

Every prunable weight ``W`` has an fp32 importance score ``S``, zero at the
start, that accumulates at every optimizer step::

    S <- S - lr_S * dL/dW' * W        with W' = W * mask

``dL/dW'`` is the straight-through estimate (the gradient of the weight the
forward pass used, read at every position, pruned ones included) and ``W`` is
the retained dense weight. At each scheduled update the mask keeps the
``1 - sparsity`` highest scores (exactly: ties at the shared threshold are
broken by position), globally, per layer or per ERK share (``scope``). Pruned weights keep their values
and keep accumulating scores, so they can come back.

Mechanism: a :class:`~prunekit_movement.gate.MaskGate` parametrization, so the
optimizer trains the dense ``W`` (``Target.parameter``) and the forward pass
sees ``W * mask`` (``Target.weight``). In ``before_step`` the score reads the
full gradient, then the gradient is masked: pruned weights get no loss
gradient, and at each mask update their optimizer moments are zeroed, so Adam
and momentum do not move them while they are pruned. Weight decay still
applies to them (decoupled AdamW decay shrinks a pruned weight by
``1 - lr * wd`` per step, as it does in the paper's AdamW training).

Kept between steps: score (4 bytes) and mask (1 byte, from the first update)
per prunable weight. The dense ``W`` is the model's own parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from prunekit.api import MASKED_OPTIMIZER_STATE, Pruner, Target, sparsity_groups, threshold_for_sparsity
from prunekit_movement.gate import MaskGate, install_gate


def torch_optimizer(optimizer: Any) -> torch.optim.Optimizer | None:
    """The ``torch.optim.Optimizer`` behind ``optimizer`` (which may wrap one; anything with ``param_groups`` is one)."""
    if optimizer is None or hasattr(optimizer, "param_groups"):
        found: torch.optim.Optimizer | None = optimizer
        return found
    inner: torch.optim.Optimizer | None = getattr(optimizer, "optimizer", None)
    return inner


class MovementPruner(Pruner):
    """Accumulated movement scores, top-k masks; pruned weights may return.

    ``lr_score=None`` uses, at every step, the optimizer's current learning
    rate of the weight's parameter group (so scores follow the model's
    schedule, as in the paper); a float fixes it.
    """

    def __init__(self, targets: list[Target], lr_score: float | None = None, scope: str = "global") -> None:
        super().__init__(targets)
        self.scope = scope
        self.lr_score = lr_score
        self.scores: list[torch.Tensor | None] = [None] * len(targets)
        self.masks: list[torch.Tensor | None] = [None] * len(targets)
        self.gates: list[MaskGate] = [install_gate(t) for t in targets]
        self._group_of: dict[int, int] = {}

    # -- training hooks -------------------------------------------------
    def bind(self, optimizer: torch.optim.Optimizer) -> None:
        super().bind(optimizer)
        inner = torch_optimizer(optimizer)
        groups = inner.param_groups if inner is not None else []
        self._group_of = {id(p): g for g, group in enumerate(groups) for p in group["params"]}
        for i in range(len(self.targets)):
            self._score(i)

    @torch.no_grad()
    def before_step(self, step: int) -> None:
        """Accumulate ``S -= lr_S * grad * W`` from the full gradient, then mask it.

        A step whose gradients are not all finite (a mixed-precision overflow,
        which the gradient scaler skips) leaves the scores unchanged.
        """
        present = [(i, t.parameter, t.parameter.grad) for i, t in enumerate(self.targets) if t.parameter.grad is not None]
        if not present:
            return
        # a sum is non-finite iff an element is (or the sum overflows float32): one cheap pass
        finite = bool(torch.stack([grad.sum(dtype=torch.float32) for _, _, grad in present]).isfinite().all())
        for i, param, grad in present:
            if finite:
                score = self._score(i)
                score.addcmul_(grad.to(torch.float32), param.detach().to(torch.float32), value=-self._lr(param))
            mask = self.masks[i]
            if mask is not None:
                grad.mul_(mask)

    @torch.no_grad()
    def update_masks(self, sparsity: float, step: int) -> None:
        """Keep exactly ``round((1 - sparsity) * n)`` highest scores per group."""
        shapes = [tuple(t.parameter.shape) for t in self.targets]
        for indices, group_sparsity in sparsity_groups(shapes, sparsity, self.scope):
            self._update_group(indices, group_sparsity)
        self._zero_pruned_optimizer_state()

    def enforce(self) -> None:
        """Nothing to do: the gate applies the mask in every forward pass."""

    # -- state ------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for target, score, mask in zip(self.targets, self.scores, self.masks):
            if score is not None:
                out[f"score:{target.name}"] = score
            if mask is not None:
                out[f"mask:{target.name}"] = mask
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "scores": [None if s is None else s.clone() for s in self.scores],
            "masks": [None if m is None else m.clone() for m in self.masks],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        scores, masks = state["scores"], state["masks"]
        if len(scores) != len(self.targets) or len(masks) != len(self.targets):
            raise ValueError("score/mask count does not match the prunable set")
        for i, target in enumerate(self.targets):
            param = target.parameter
            for value in (scores[i], masks[i]):
                if value is not None and tuple(value.shape) != tuple(param.shape):
                    raise ValueError(f"state for {target.name} has shape {tuple(value.shape)}, expected {tuple(param.shape)}")
            self.scores[i] = None if scores[i] is None else scores[i].to(param.device, torch.float32).clone()
            self.masks[i] = None if masks[i] is None else masks[i].to(param.device, torch.bool).clone()
            self.gates[i].mask = self.masks[i]

    # -- internals ------------------------------------------------------
    def _score(self, i: int) -> torch.Tensor:
        score = self.scores[i]
        if score is None:
            param = self.targets[i].parameter
            score = self.scores[i] = torch.zeros(param.shape, dtype=torch.float32, device=param.device)
        return score

    def _lr(self, param: torch.Tensor) -> float:
        if self.lr_score is not None:
            return self.lr_score
        index = self._group_of.get(id(param))
        inner = torch_optimizer(self.optimizer)
        if index is None or inner is None:
            raise RuntimeError("movement pruner: bind(optimizer) first, or set lr_score")
        return float(inner.param_groups[index]["lr"])  # looked up each step: schedules replace nothing

    def _scores(self, indices: list[int]) -> Iterator[torch.Tensor]:
        for i in indices:
            yield self._score(i)

    def _update_group(self, indices: list[int], sparsity: float) -> None:
        numel = sum(self.targets[i].numel() for i in indices)
        threshold = threshold_for_sparsity(lambda: self._scores(indices), numel, sparsity)
        keep = numel - min(int(round(sparsity * numel)), numel)  # the k threshold_for_sparsity prunes
        kept = 0
        for i in indices:
            mask = self.masks[i]
            if mask is None:
                mask = self.masks[i] = torch.empty(self._score(i).shape, dtype=torch.bool, device=self._score(i).device)
            torch.gt(self._score(i), threshold, out=mask)
            kept += int(mask.sum().item())
            self.gates[i].mask = mask
        ties_to_keep = keep - kept  # scores equal to the threshold, kept in position order
        for i in indices:
            if ties_to_keep <= 0:
                break
            tie = self._score(i) == threshold
            take = tie & (tie.flatten().cumsum(0) <= ties_to_keep).view_as(tie)
            mask = self.masks[i]
            assert mask is not None  # made for every index above
            mask |= take
            ties_to_keep -= int(take.sum().item())

    @torch.no_grad()
    def _zero_pruned_optimizer_state(self) -> None:
        inner = torch_optimizer(self.optimizer)
        if inner is None:
            return
        for target, mask in zip(self.targets, self.masks):
            state = inner.state.get(target.parameter, {})
            for key in MASKED_OPTIMIZER_STATE:
                value = state.get(key)
                if mask is not None and isinstance(value, torch.Tensor) and value.shape == mask.shape:
                    value.mul_(mask)
