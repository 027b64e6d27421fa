"""Built-in optimizers: sgd, adam, adamw, adamwadv and adamwspam."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from prunekit.api import STATE_STORAGE_OPTION, Option, Register, TrainingOptimizer, hookimpl, with_state_storage
from prunekit.builtin.spam import AMSGRAD_STATE, CLIP_RULES, SpamOptimizer

ADAM_STATE = ("exp_avg", "exp_avg_sq")


def cosine_per_epoch(optimizer: torch.optim.Optimizer, epochs: int, eta_min: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine annealing stepped once per epoch, in closed form (never compounds)."""
    base = [g["lr"] for g in optimizer.param_groups]

    def factor(i: int) -> Callable[[int], float]:
        b = base[i]
        return lambda e: (eta_min + (b - eta_min) * (1 + math.cos(math.pi * min(e, epochs) / epochs)) / 2) / b

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [factor(i) for i in range(len(base))])


def fused_if_available(
    cls: type[torch.optim.Optimizer], param_groups: list[dict[str, Any]], **kwargs: Any
) -> torch.optim.Optimizer:
    """``cls(..., fused=True)`` where torch has a fused kernel for these parameters.

    The same update, several times faster on CPU; the default multi-tensor path
    also slows down markedly on the exact zeros pruning leaves in ``exp_avg_sq``.
    """
    try:
        return cls(param_groups, fused=True, **kwargs)  # type: ignore[call-arg]  # Adam/AdamW take fused=
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return cls(param_groups, **kwargs)


def sgd(
    param_groups: list[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    steps_per_epoch: int,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    return torch.optim.SGD(param_groups, lr=lr, momentum=momentum)


def adam(
    param_groups: list[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    steps_per_epoch: int,
    state_storage: str = "dense",
) -> torch.optim.Optimizer:
    return with_state_storage(fused_if_available(torch.optim.Adam, param_groups, lr=lr), state_storage)


def adamw(
    param_groups: list[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    steps_per_epoch: int,
    state_storage: str = "dense",
) -> torch.optim.Optimizer:
    return with_state_storage(fused_if_available(torch.optim.AdamW, param_groups, lr=lr), state_storage)


def adamwadv(
    param_groups: list[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    steps_per_epoch: int,
    max_grad_norm: float = 1.0,
    eta_min: float = 1e-6,
    state_storage: str = "dense",
) -> TrainingOptimizer:
    opt = fused_if_available(torch.optim.AdamW, param_groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, amsgrad=True)
    made = TrainingOptimizer(opt, cosine_per_epoch(opt, epochs, eta_min), max_grad_norm=max_grad_norm)
    return with_state_storage(made, state_storage)


def adamwspam(
    param_groups: list[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    steps_per_epoch: int,
    preset: str = "spam",
    eps: float | None = None,
    amsgrad: bool | None = None,
    max_grad_norm: float | None = None,
    eta_min: float = 1e-6,
    spike_z: float | None = None,
    history: int = 100,
    min_history: int = 10,
    clip_theta: float | None = None,
    clip_rule: str | None = None,
    clip_warmup: int | None = None,
    reset_interval: int | None = None,
    reset_warmup: int | None = None,
    state_storage: str = "dense",
) -> SpamOptimizer:
    """SPAM over AdamW; ``preset`` supplies every option left at None (``SPAM_PRESETS``)."""
    given = dict(
        eps=eps,
        amsgrad=amsgrad,
        max_grad_norm=max_grad_norm,
        spike_z=spike_z,
        clip_theta=clip_theta,
        clip_rule=clip_rule,
        clip_warmup=clip_warmup,
        reset_interval=reset_interval,
        reset_warmup=reset_warmup,
    )
    s = SPAM_PRESETS[preset] | {k: v for k, v in given.items() if v is not None}
    opt = fused_if_available(torch.optim.AdamW, param_groups, lr=lr, betas=(0.9, 0.999), eps=s["eps"], amsgrad=s["amsgrad"])
    made = SpamOptimizer(
        opt,
        cosine_per_epoch(opt, epochs, eta_min),
        max_grad_norm=s["max_grad_norm"],
        spike_z=s["spike_z"],
        history=history,
        min_history=min_history,
        clip_theta=s["clip_theta"],
        clip_rule=s["clip_rule"],
        clip_warmup=s["clip_warmup"],
        reset_interval=s["reset_interval"],
        reset_warmup=s["reset_warmup"],
    )
    return with_state_storage(made, state_storage)


#: ``adamwspam``'s presets: ``spam`` follows the SPAM paper and its reference code
#: (TianjinYellow/SPAM-Optimizer: eps 1e-6, no AMSGrad, no norm clipping, ΔT 500,
#: 150-step warm-up after a reset, θ 5000, 20 steps without clipping); ``adamwprune``
#: is the original AdamWPrune code's settings (adamwspam's defaults before API 1.5).
SPAM_PRESETS: dict[str, dict[str, Any]] = {
    "spam": dict(
        eps=1e-6,
        amsgrad=False,
        max_grad_norm=0.0,
        spike_z=0.0,
        clip_theta=5000.0,
        clip_rule="spam",
        clip_warmup=20,
        reset_interval=500,
        reset_warmup=150,
    ),
    "adamwprune": dict(
        eps=1e-8,
        amsgrad=True,
        max_grad_norm=1.0,
        spike_z=2.0,
        clip_theta=0.0,
        clip_rule="spam",
        clip_warmup=20,
        reset_interval=0,
        reset_warmup=0,
    ),
}


def _preset_help(name: str, text: str) -> str:
    paper, original = SPAM_PRESETS["spam"][name], SPAM_PRESETS["adamwprune"][name]
    return f"{text}; default: the preset's (spam: {paper}, adamwprune: {original})"


ADV_OPTIONS = (
    Option("max_grad_norm", float, 1.0, "clip the global gradient norm to this; 0 disables", minimum=0.0),
    Option("eta_min", float, 1e-6, "final learning rate of the per-epoch cosine", minimum=0.0),
)
SPAM_OPTIONS = (
    Option(
        "preset",
        str,
        "spam",
        "spam: the SPAM paper and its reference code; adamwprune: the original AdamWPrune code's settings "
        "(AMSGrad, eps 1e-8, norm clip 1.0, z-score spike heuristic, no reset, no clipping); "
        "every option left unset takes the preset's value",
        choices=tuple(SPAM_PRESETS),
    ),
    Option("eps", float, None, _preset_help("eps", "Adam's eps (paper: 1e-6; AdamWPrune: 1e-8)"), above=0.0),
    Option("amsgrad", bool, None, _preset_help("amsgrad", "AMSGrad (AdamWPrune; not in SPAM)")),
    Option(
        "max_grad_norm",
        float,
        None,
        _preset_help("max_grad_norm", "clip the global gradient norm to this, 0 disables (AdamWPrune; not in SPAM)"),
        minimum=0.0,
    ),
    Option(
        "eta_min", float, 1e-6, "final learning rate of the per-epoch cosine (prunekit's schedule, both presets)", minimum=0.0
    ),
    Option(
        "spike_z",
        float,
        None,
        _preset_help("spike_z", "z-score of the gradient norm that counts as a spike, 0 disables (AdamWPrune; not in SPAM)"),
        minimum=0.0,
    ),
    Option("history", int, 100, "gradient norms remembered for spike_z (AdamWPrune)", minimum=2),
    Option("min_history", int, 10, "norms needed before spike_z detects spikes (AdamWPrune)", minimum=2),
    Option(
        "clip_theta",
        float,
        None,
        _preset_help(
            "clip_theta",
            "spike-aware clip threshold theta: |g| > sqrt(theta * v) is clipped to that, weights with v == 0 never; "
            "0 disables (SPAM paper: 5000; the original AdamWPrune code used 50)",
        ),
        minimum=0.0,
    ),
    Option(
        "clip_rule",
        str,
        None,
        _preset_help(
            "clip_rule",
            "spam: the SPAM paper's rule (no clipping for clip_warmup steps after the start and after each reset); "
            "original: the original AdamWPrune code's (clips from the first step, right after resets too)",
        ),
        choices=CLIP_RULES,
    ),
    Option(
        "clip_warmup",
        int,
        None,
        _preset_help(
            "clip_warmup",
            "rule spam: steps without clipping after the start and after each reset "
            "(SPAM's reference code: grad_accu_steps, 20; not SPAM's N, which is reset_warmup)",
        ),
        minimum=0,
    ),
    Option(
        "reset_interval",
        int,
        None,
        _preset_help(
            "reset_interval", "zero Adam moments at every step t with t % N == 0 (SPAM's momentum reset, ΔT); 0 disables"
        ),
        minimum=0,
    ),
    Option(
        "reset_warmup",
        int,
        None,
        _preset_help(
            "reset_warmup", "steps over which the update warms up again from 0.01 after a reset, cosine (SPAM's N; 0 disables)"
        ),
        minimum=0,
    ),
)


@hookimpl
def register_optimizers(register: Register) -> None:
    register(
        "sgd",
        sgd,
        description="SGD, momentum 0.9, weight decay on weights only",
        options=(Option("momentum", float, 0.9, "momentum", minimum=0.0),),
        lr=0.05,
        state=("momentum_buffer",),
    )
    register(
        "adam",
        adam,
        description="Adam, no weight decay",
        options=(STATE_STORAGE_OPTION,),
        lr=1e-3,
        state=ADAM_STATE,
        weight_decay=0.0,
    )
    register(
        "adamw",
        adamw,
        description="AdamW, decoupled weight decay on weights only",
        options=(STATE_STORAGE_OPTION,),
        lr=1e-3,
        state=ADAM_STATE,
    )
    register(
        "adamwadv",
        adamwadv,
        description="AdamW + AMSGrad, per-epoch cosine to 1e-6, grad-norm clip 1.0",
        options=(STATE_STORAGE_OPTION, *ADV_OPTIONS),
        lr=1e-3,
        state=AMSGRAD_STATE,
    )
    register(
        "adamwspam",
        adamwspam,
        description="SPAM (Huang et al. 2025): AdamW with momentum reset every 500 steps and spike-aware clipping; preset=adamwprune: the original AdamWPrune settings",
        options=(STATE_STORAGE_OPTION, *SPAM_OPTIONS),
        lr=1e-3,
        state=AMSGRAD_STATE,
    )
