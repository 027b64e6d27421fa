"""Built-in optimizers: sgd, adam, adamw, adamwadv and adamwspam."""

from __future__ import annotations

import math

import torch

from prunekit import hookimpl
from prunekit.builtin.spam import AMSGRAD_STATE, CLIP_RULES, SpamOptimizer
from prunekit.core.optim import TrainingOptimizer
from prunekit.core.options import Option

ADAM_STATE = ("exp_avg", "exp_avg_sq")


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
    clip_rule="spam",
    clip_warmup=20,
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
        clip_rule=clip_rule,
        clip_warmup=clip_warmup,
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
    Option(
        "clip_theta",
        float,
        0.0,
        "spike-aware clip threshold theta: |g| > sqrt(theta * v) is clipped to that; "
        "0 disables (the SPAM paper uses 5000, the original AdamWPrune code 50)",
        minimum=0.0,
    ),
    Option(
        "clip_rule",
        str,
        "spam",
        "spam: the SPAM paper's rule (no clipping for clip_warmup steps after the start "
        "and after each reset); original: the original AdamWPrune code's (clips from the first step, "
        "right after resets too)",
        choices=CLIP_RULES,
    ),
    Option(
        "clip_warmup",
        int,
        20,
        "rule spam: steps without clipping after the start and after each reset (SPAM's N; its reference code uses 20)",
        minimum=0,
    ),
    Option(
        "reset_interval",
        int,
        0,
        "zero Adam moments at every step t with t % N == 0 (SPAM's momentum reset); 0 disables",
        minimum=0,
    ),
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
        description="adamwadv + SPAM (Huang et al. 2025) momentum reset and spike clipping",
        options=SPAM_OPTIONS,
        lr=1e-3,
        state=AMSGRAD_STATE,
    )
