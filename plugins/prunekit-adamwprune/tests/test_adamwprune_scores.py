"""Each variant's score equals its formula; fallback and missing-state behaviour."""

from __future__ import annotations

import pytest
import torch

from prunekit.api import UsageError
from prunekit_adamwprune.pruner import StatePruner

EPS = 1e-8


def literal(variant: str, w: torch.Tensor, m: torch.Tensor, v: torch.Tensor, eps: float) -> torch.Tensor:
    if variant == "bitter7":
        return w.abs() * (v.abs() + eps) ** 0.25
    if variant == "bitter0":
        return (w * m).abs() * w.abs() / (torch.sqrt(v) + eps)
    if variant == "bitter3":
        return w.abs() * torch.sqrt(m.abs() + eps)
    return w**2 * v


@pytest.mark.parametrize("variant", ["bitter7", "bitter0", "bitter3", "fisher"])
@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_score_matches_formula(trained, variant, eps):
    model, targets, opt = trained
    pruner = StatePruner(targets, variant=variant, eps=eps)
    pruner.bind(opt)
    for i, t in enumerate(targets):
        st = opt.state[t.parameter]
        w, m, v = t.parameter.detach(), st["exp_avg"], st["exp_avg_sq"]
        before = (w.clone(), m.clone(), v.clone())
        got = pruner.score(i, t)
        torch.testing.assert_close(got, literal(variant, w, m, v, eps), rtol=1e-6, atol=0)
        # scoring never writes into the weight or the optimizer state
        for a, b in zip(before, (w, m, v)):
            assert torch.equal(a, b)


def test_variants_rank_differently(trained):
    _, targets, opt = trained
    scores = {}
    for variant in ("bitter7", "bitter0", "bitter3", "fisher"):
        p = StatePruner(targets, variant=variant)
        p.bind(opt)
        scores[variant] = p.score(2, targets[2]).flatten().argsort()
    assert len({tuple(s.tolist()) for s in scores.values()}) == 4


def test_falls_back_to_magnitude_without_state(trained):
    _, targets, opt = trained
    p = StatePruner(targets)
    assert torch.equal(p.score(0, targets[0]), targets[0].parameter.detach().abs())  # not bound yet
    fresh = torch.optim.AdamW([t.parameter for t in targets], lr=1e-3)  # no step taken: no state
    p.bind(fresh)
    for i, t in enumerate(targets):
        assert torch.equal(p.score(i, t), t.parameter.detach().abs())


def test_missing_moment_is_one_clear_error(trained):
    _, targets, _ = trained
    sgd = torch.optim.SGD([t.parameter for t in targets], lr=0.1, momentum=0.9)
    for t in targets:
        t.parameter.grad = torch.ones_like(t.parameter)
    sgd.step()
    p = StatePruner(targets, variant="bitter0")
    p.bind(sgd)
    with pytest.raises(UsageError, match="needs the optimizer's per-weight 'exp_avg'.*momentum_buffer") as info:
        p.update_masks(0.5, 1)
    assert "\n" not in str(info.value)
