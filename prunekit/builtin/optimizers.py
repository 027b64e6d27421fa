"""Built-in optimizers: sgd, adam, adamw, adamwadv and adamwspam."""

from __future__ import annotations

import math
from collections import deque

import torch

from prunekit import hookimpl
from prunekit.core.optim import TrainingOptimizer
from prunekit.core.options import Option

ADAM_STATE = ("exp_avg", "exp_avg_sq")
AMSGRAD_STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def cosine_per_epoch(optimizer: torch.optim.Optimizer, epochs: int, eta_min: float):
    """Cosine annealing stepped once per epoch, in closed form (never compounds)."""
    base = [g["lr"] for g in optimizer.param_groups]

    def factor(i: int):
        b = base[i]
        return lambda e: (eta_min + (b - eta_min) * (1 + math.cos(math.pi * min(e, epochs) / epochs)) / 2) / b

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [factor(i) for i in range(len(base))])


def fused_if_available(cls: type[torch.optim.Optimizer], param_groups, **kwargs) -> torch.optim.Optimizer:
    """``cls(..., fused=True)`` where torch has a fused kernel for these parameters.

    The same update, several times faster on CPU; the default multi-tensor path
    also slows down markedly on the exact zeros pruning leaves in ``exp_avg_sq``.
    """
    try:
        return cls(param_groups, fused=True, **kwargs)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return cls(param_groups, **kwargs)


def sgd(param_groups, *, lr, weight_decay, epochs, steps_per_epoch, momentum=0.9):
    return torch.optim.SGD(param_groups, lr=lr, momentum=momentum)


def adam(param_groups, *, lr, weight_decay, epochs, steps_per_epoch):
    return fused_if_available(torch.optim.Adam, param_groups, lr=lr)


def adamw(param_groups, *, lr, weight_decay, epochs, steps_per_epoch):
    return fused_if_available(torch.optim.AdamW, param_groups, lr=lr)


def adamwadv(param_groups, *, lr, weight_decay, epochs, steps_per_epoch, max_grad_norm=1.0, eta_min=1e-6):
    opt = fused_if_available(torch.optim.AdamW, param_groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, amsgrad=True)
    return TrainingOptimizer(opt, cosine_per_epoch(opt, epochs, eta_min), max_grad_norm=max_grad_norm)


class SpamOptimizer(TrainingOptimizer):
    """AdamW (AMSGrad, cosine) with SPAM-style gradient-spike handling.

    Each step: optional per-element clip of ``|g|`` to ``sqrt(theta * (v + 1e-12))``
    (where ``v`` > 0);
    the global gradient norm is compared with the previous ``history`` norms and,
    once ``min_history`` are known, a z-score above ``spike_z`` halves ``exp_avg``
    and scales ``exp_avg_sq`` by 0.9; then the norm is clipped. With
    ``reset_interval`` > 0 the moments are zeroed every that many steps and the
    learning rate warms up again over ``reset_warmup`` steps (a factor on the
    scheduled rate, so it never compounds).
    """

    def __init__(
        self, optimizer, scheduler, *, max_grad_norm, spike_z, history, min_history, clip_theta, reset_interval, reset_warmup
    ):
        super().__init__(optimizer, scheduler, max_grad_norm=max_grad_norm)
        self.spike_z = spike_z
        self.norms: deque[float] = deque(maxlen=history)
        self.min_history = min_history
        self.clip_theta = clip_theta
        self.reset_interval = reset_interval
        self.reset_warmup = reset_warmup
        self.spikes = 0
        self.resets = 0
        self._last_reset = 0
        self._scheduled = [g["lr"] for g in optimizer.param_groups]

    @torch.no_grad()
    def process_gradients(self, step: int) -> None:
        params = [p for p in self.parameters() if p.grad is not None]
        if self.clip_theta > 0:
            for p in params:
                v = self.optimizer.state.get(p, {}).get("exp_avg_sq")
                if v is not None:  # where v is 0 (no history, or just reset) nothing is clipped
                    bound = torch.sqrt(self.clip_theta * (v + 1e-12)).masked_fill_(v == 0, float("inf"))
                    p.grad.copy_(torch.maximum(torch.minimum(p.grad, bound), -bound))
        norm = float(torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm if self.max_grad_norm else float("inf")))
        if len(self.norms) >= self.min_history:
            previous = torch.tensor(list(self.norms), dtype=torch.float64)
            std = float(previous.std())
            if std > 0 and (norm - float(previous.mean())) / std > self.spike_z:
                self.spikes += 1
                for p in params:
                    state = self.optimizer.state.get(p, {})
                    if "exp_avg" in state:
                        state["exp_avg"].mul_(0.5)
                        state["exp_avg_sq"].mul_(0.9)
        if math.isfinite(norm):
            self.norms.append(norm)
        self._apply_warmup(step)

    def _apply_warmup(self, step: int) -> None:
        if self.reset_interval <= 0 or self.reset_warmup <= 0 or self._last_reset == 0:
            return
        t = step - self._last_reset
        factor = 0.5 * (1 - math.cos(math.pi * min(t, self.reset_warmup) / self.reset_warmup)) if t < self.reset_warmup else 1.0
        for group, lr in zip(self.optimizer.param_groups, self._scheduled):
            group["lr"] = lr * max(factor, 1e-3)

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        if self.reset_interval > 0 and step % self.reset_interval == 0:
            self.resets += 1
            self._last_reset = step
            for state in self.optimizer.state.values():
                for key in AMSGRAD_STATE:
                    if key in state:
                        state[key].zero_()

    def end_epoch(self, epoch: int) -> None:
        super().end_epoch(epoch)
        self._scheduled = [g["lr"] for g in self.optimizer.param_groups]

    def extra_state(self) -> dict:
        return {
            "norms": list(self.norms),
            "spikes": self.spikes,
            "resets": self.resets,
            "last_reset": self._last_reset,
            "scheduled": list(self._scheduled),
        }

    def load_extra_state(self, state: dict) -> None:
        self.norms.clear()
        self.norms.extend(float(n) for n in state["norms"])
        self.spikes = int(state["spikes"])
        self.resets = int(state["resets"])
        self._last_reset = int(state["last_reset"])
        self._scheduled = [float(lr) for lr in state["scheduled"]]


def adamwspam(
    param_groups,
    *,
    lr,
    weight_decay,
    epochs,
    steps_per_epoch,
    spike_z=2.0,
    history=100,
    min_history=10,
    clip_theta=0.0,
    reset_interval=0,
    reset_warmup=0,
    max_grad_norm=1.0,
    eta_min=1e-6,
):
    opt = fused_if_available(torch.optim.AdamW, param_groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, amsgrad=True)
    return SpamOptimizer(
        opt,
        cosine_per_epoch(opt, epochs, eta_min),
        max_grad_norm=max_grad_norm,
        spike_z=spike_z,
        history=history,
        min_history=min_history,
        clip_theta=clip_theta,
        reset_interval=reset_interval,
        reset_warmup=reset_warmup,
    )


ADV_OPTIONS = (
    Option("max_grad_norm", float, 1.0, "clip the global gradient norm to this; 0 disables", minimum=0.0),
    Option("eta_min", float, 1e-6, "final learning rate of the per-epoch cosine", minimum=0.0),
)
SPAM_OPTIONS = ADV_OPTIONS + (
    Option("spike_z", float, 2.0, "z-score of the gradient norm that counts as a spike", minimum=0.0),
    Option("history", int, 100, "gradient norms remembered", minimum=2),
    Option("min_history", int, 10, "norms needed before spikes are detected", minimum=2),
    Option("clip_theta", float, 0.0, "per-element clip |g| <= sqrt(theta * v); 0 disables (seed: 50)", minimum=0.0),
    Option("reset_interval", int, 0, "zero Adam moments every N steps; 0 disables", minimum=0),
    Option("reset_warmup", int, 0, "cosine learning-rate warm-up steps after a reset", minimum=0),
)


@hookimpl
def register_optimizers(register):
    register(
        "sgd",
        sgd,
        description="SGD, momentum 0.9, weight decay on weights only",
        options=(Option("momentum", float, 0.9, "momentum", minimum=0.0),),
        lr=0.05,
        state=("momentum_buffer",),
    )
    register("adam", adam, description="Adam, no weight decay", lr=1e-3, state=ADAM_STATE, weight_decay=0.0)
    register("adamw", adamw, description="AdamW, decoupled weight decay on weights only", lr=1e-3, state=ADAM_STATE)
    register(
        "adamwadv",
        adamwadv,
        description="AdamW + AMSGrad, per-epoch cosine to 1e-6, grad-norm clip 1.0",
        options=ADV_OPTIONS,
        lr=1e-3,
        state=AMSGRAD_STATE,
    )
    register(
        "adamwspam",
        adamwspam,
        description="adamwadv + SPAM gradient-spike handling",
        options=SPAM_OPTIONS,
        lr=1e-3,
        state=AMSGRAD_STATE,
    )
