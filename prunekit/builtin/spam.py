"""The optimizer behind ``adamwspam``: AdamW with SPAM's momentum reset and spike-aware clipping."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch

from prunekit.api import TrainingOptimizer, live_values

#: The state of AdamW with AMSGrad, every entry of which a momentum reset zeroes.
AMSGRAD_STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
CLIP_RULES = ("spam", "original")


class SpamOptimizer(TrainingOptimizer):
    """AdamW with SPAM's momentum reset and spike-aware clipping (and the original AdamWPrune extras).

    SPAM is Huang et al. 2025, "SPAM: Spike-Aware Adam with Momentum Reset for
    Stable LLM Training" (reference code: TianjinYellow/SPAM-Optimizer). All of it
    runs in :meth:`process_gradients` of step ``t`` (1-based), before the optimizer
    step, in this order:

    1. momentum reset: with ``reset_interval`` (SPAM's ΔT) > 0, when
       ``t % ΔT == 0`` the moments are zeroed before this step's gradient
       enters them, as in SPAM; the update then warms up over ``reset_warmup``
       (SPAM's N) steps as in the reference code: factor
       ``1 - 0.99 (1 + cos(pi j / (N + 1))) / 2`` at ``j = t - reset`` (0.01 on the
       reset step), 1 from ``j = N`` on. The factor scales the learning rate and
       divides the decoupled weight decay during the step, so ``lr * wd`` is unchanged
       (the reference scales only the Adam update). The reset never runs after a step, so a mask
       update always sees the moments as the optimizer step left them.
    2. a non-finite gradient norm (an fp16 overflow, a step GradScaler then
       skips) changes nothing else: no clipping, no spike handling, no entry
       in the norm history, moments untouched.
    3. spike-aware clipping (``clip_theta`` = θ > 0), with ``v`` the
       ``exp_avg_sq`` before this step: rule ``spam`` (the paper's) sets
       every ``g`` with ``g² > θ v`` to ``sign(g) sqrt(θ v)``, except during
       the first ``clip_warmup`` steps after the start and after each reset
       (the reference code's ``grad_accu_steps``: on iff ``t >= W`` and
       ``t % ΔT >= W``); rule ``original`` (the original AdamWPrune code)
       clips ``|g|`` to ``sqrt(θ (v + 1e-12))`` from the first step on, right
       after resets too. Under both rules a weight with ``v == 0`` (no
       second-moment history: just grown by RigL/SET, returning under
       movement pruning, or never given a gradient) is not clipped: its bound
       would be 0 and would hold it at zero for ever.
    4. the original AdamWPrune code's gradient-norm spike heuristic (not in SPAM;
       ``spike_z`` > 0): once ``min_history`` norms are known, a z-score above
       ``spike_z`` halves ``exp_avg`` and scales ``exp_avg_sq`` by 0.9;
    5. the global gradient norm is clipped to ``max_grad_norm`` (> 0; not in SPAM).

    The arguments are ``adamwspam``'s options (``SPAM_OPTIONS``), checked by the core.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        *,
        max_grad_norm: float | None,
        spike_z: float,
        history: int,
        min_history: int,
        clip_theta: float,
        reset_interval: int,
        reset_warmup: int,
        clip_rule: str = "spam",
        clip_warmup: int = 20,
    ) -> None:
        super().__init__(optimizer, scheduler, max_grad_norm=max_grad_norm)
        self.spike_z = spike_z
        self.norms: deque[float] = deque(maxlen=history)
        self.min_history = min_history
        self.clip_theta = clip_theta
        self.clip_rule = clip_rule
        self.clip_warmup = clip_warmup
        self.reset_interval = reset_interval
        self.reset_warmup = reset_warmup
        self.spikes = 0
        self.resets = 0
        self.nonfinite = 0  # steps skipped for a non-finite gradient norm
        self._last_reset = 0
        self._scheduled = [g["lr"] for g in optimizer.param_groups]
        self._decay = [g["weight_decay"] for g in optimizer.param_groups]

    @torch.no_grad()
    def process_gradients(self, step: int) -> None:
        if self.reset_interval > 0 and step % self.reset_interval == 0:
            self._reset_moments(step)
        self._apply_warmup(step)
        params = [p for p in self.parameters() if p.grad is not None]
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        total = torch.nn.utils.get_total_norm(grads)
        norm = float(total)
        if not math.isfinite(norm):  # overflow: GradScaler skips this step; leave every state alone
            self.nonfinite += 1
            return
        if self.clip_theta > 0 and self._clipping_on(step):
            for p in params:
                v = self.optimizer.state.get(p, {}).get("exp_avg_sq")
                if v is not None and p.grad is not None:
                    with live_values(self.optimizer, p, p.grad) as grad:  # laid out like v
                        self._clip(grad, v)
            total = torch.nn.utils.get_total_norm(grads)
            norm = float(total)
        if self.spike_z > 0 and len(self.norms) >= self.min_history:
            previous = torch.tensor(list(self.norms), dtype=torch.float64)
            std = float(previous.std())
            if std > 0 and (norm - float(previous.mean())) / std > self.spike_z:
                self.spikes += 1
                for p in params:
                    state = self.optimizer.state.get(p, {})
                    if "exp_avg" in state:
                        state["exp_avg"].mul_(0.5)
                        state["exp_avg_sq"].mul_(0.9)
        self.norms.append(norm)
        if self.max_grad_norm:
            torch.nn.utils.clip_grads_with_norm_(params, self.max_grad_norm, total)

    def _clipping_on(self, step: int) -> bool:
        if self.clip_rule == "original":
            return True
        if step < self.clip_warmup:
            return False
        return bool(self.reset_interval <= 0 or step % self.reset_interval >= self.clip_warmup)

    def _clip(self, grad: torch.Tensor, v: torch.Tensor) -> None:
        """Clip ``grad`` in place where it spikes; a weight with no history (``v == 0``) keeps its gradient."""
        if self.clip_rule == "original":
            bound = torch.sqrt(self.clip_theta * (v + 1e-12))
        else:
            bound = torch.sqrt(self.clip_theta * v)
        spike = (grad.abs() > bound).logical_and_(v > 0)
        grad.copy_(torch.where(spike, grad.sign() * bound, grad))

    def _reset_moments(self, step: int) -> None:
        self.resets += 1
        self._last_reset = step
        for state in self.optimizer.state.values():
            for key in AMSGRAD_STATE:
                if key in state:
                    state[key].zero_()

    def warmup_factor(self, step: int) -> float:
        """The reference code's factor on the update at ``step``: 0.01 on a reset step, 1 from ``reset_warmup`` steps on."""
        j = step - self._last_reset
        if self.reset_interval <= 0 or self.reset_warmup <= 0 or self._last_reset == 0 or j >= self.reset_warmup:
            return 1.0
        return 1.0 - 0.99 * (1.0 + math.cos(math.pi * j / (self.reset_warmup + 1))) / 2.0

    def _apply_warmup(self, step: int) -> None:
        if self.reset_interval <= 0 or self.reset_warmup <= 0 or self._last_reset == 0:
            return
        factor = self.warmup_factor(step)
        for group, lr, decay in zip(self.optimizer.param_groups, self._scheduled, self._decay):
            group["lr"] = lr * factor
            group["weight_decay"] = decay / factor  # lr * weight_decay as without the warm-up

    def after_step(self, step: int) -> None:
        """The warm-up's weight-decay scaling lasts one optimizer step: the groups show the configured decay between steps."""
        for group, decay in zip(self.optimizer.param_groups, self._decay):
            group["weight_decay"] = decay

    def end_epoch(self, epoch: int) -> None:
        super().end_epoch(epoch)
        self._scheduled = [g["lr"] for g in self.optimizer.param_groups]

    def extra_state(self) -> dict[str, Any]:
        return {
            "norms": list(self.norms),
            "spikes": self.spikes,
            "resets": self.resets,
            "last_reset": self._last_reset,
            "scheduled": list(self._scheduled),
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.norms.clear()
        self.norms.extend(float(n) for n in state["norms"])
        self.spikes = int(state["spikes"])
        self.resets = int(state["resets"])
        self._last_reset = int(state["last_reset"])
        self._scheduled = [float(lr) for lr in state["scheduled"]]
