import math

import pytest
import torch
from torch import nn

from prunekit.builtin.optimizers import adam, adamw, adamwadv, adamwspam, sgd
from prunekit.core.train.optim import TrainingOptimizer, parameter_groups


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


def test_two_groups_no_decay_on_biases_and_norms():
    groups = parameter_groups(model(), 5e-4)
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    assert all(p.ndim == 2 for p in groups[0]["params"])
    assert all(p.ndim == 1 for p in groups[1]["params"])


@pytest.mark.parametrize("factory, cls", [(sgd, torch.optim.SGD), (adam, torch.optim.Adam), (adamw, torch.optim.AdamW)])
def test_plain_optimizers(factory, cls):
    opt = factory(parameter_groups(model(), 1e-4), lr=0.01, weight_decay=1e-4, epochs=3, steps_per_epoch=5)
    assert isinstance(opt, cls)
    assert opt.param_groups[0]["weight_decay"] == 1e-4 and opt.param_groups[1]["weight_decay"] == 0.0


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)` before:UserWarning")  # the schedule alone, no steps
def test_adamwadv_amsgrad_cosine_and_clip():
    opt = adamwadv(parameter_groups(model(), 1e-4), lr=1e-3, weight_decay=1e-4, epochs=4, steps_per_epoch=5)
    assert isinstance(opt, TrainingOptimizer)
    assert opt.optimizer.param_groups[0]["amsgrad"] is True
    assert opt.max_grad_norm == 1.0
    lrs = []
    for epoch in range(1, 5):
        lrs.append(opt.lr)
        opt.end_epoch(epoch)
    lrs.append(opt.lr)
    expected = [1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)]
    assert lrs == pytest.approx(expected)


def _step(opt, net, scale=1.0, step=1):
    opt.optimizer.zero_grad()
    (net(torch.randn(8, 4)).sum() * scale).backward()
    opt.process_gradients(step)
    opt.step()
    opt.after_step(step)


def test_spam_spike_scales_moments():
    net = model()
    opt = adamwspam(
        parameter_groups(net, 0.0),
        lr=1e-3,
        weight_decay=0.0,
        epochs=1,
        steps_per_epoch=100,
        max_grad_norm=0.0,
        preset="adamwprune",
    )
    for step in range(1, 13):
        _step(opt, net, step=step)
    weight = net[0].weight
    m_before = opt.optimizer.state[weight]["exp_avg"].clone()
    v_before = opt.optimizer.state[weight]["exp_avg_sq"].clone()
    spikes = opt.spikes
    opt.optimizer.zero_grad()
    (net(torch.randn(8, 4)).sum() * 1e4).backward()  # a spike
    opt.process_gradients(13)
    assert opt.spikes == spikes + 1
    assert torch.allclose(opt.optimizer.state[weight]["exp_avg"], m_before * 0.5)
    assert torch.allclose(opt.optimizer.state[weight]["exp_avg_sq"], v_before * 0.9)


def test_spam_reset_warmup_does_not_compound_the_learning_rate():
    net = model()
    opt = adamwspam(
        parameter_groups(net, 0.0), lr=1e-3, weight_decay=0.0, epochs=1, steps_per_epoch=100, reset_interval=10, reset_warmup=4
    )
    lrs = {}
    for step in range(1, 26):
        _step(opt, net, step=step)
        lrs[step] = opt.lr
    assert opt.resets == 2
    # After each reset the rate climbs back to exactly the scheduled rate, every time.
    assert lrs[15] == pytest.approx(1e-3) and lrs[25] == pytest.approx(1e-3)
    assert lrs[11] == pytest.approx(lrs[21]) and lrs[11] < 1e-3
    assert torch.count_nonzero(opt.optimizer.state[net[0].weight]["exp_avg"]) > 0  # moments rebuilt after reset


def test_adamwadv_max_grad_norm_zero_disables_clipping():
    net = model()
    opt = adamwadv(parameter_groups(net, 0.0), lr=1e-3, weight_decay=0.0, epochs=1, steps_per_epoch=1, max_grad_norm=0.0)
    (net(torch.randn(8, 4)).sum() * 100).backward()
    before = net[0].weight.grad.clone()
    opt.process_gradients(1)
    assert torch.equal(net[0].weight.grad, before) and before.abs().sum() > 0


def test_spam_clip_leaves_gradients_alone_after_a_moment_reset():
    net = model()
    opt = adamwspam(
        parameter_groups(net, 0.0),
        lr=1e-3,
        weight_decay=0.0,
        epochs=1,
        steps_per_epoch=100,
        clip_theta=50.0,
        reset_interval=5,
        max_grad_norm=0.0,
    )
    for step in range(1, 6):
        _step(opt, net, step=step)  # step 5 resets the moments: v == 0
    opt.optimizer.zero_grad()
    net(torch.randn(8, 4)).sum().backward()
    before = net[0].weight.grad.clone()
    opt.process_gradients(6)
    assert torch.equal(net[0].weight.grad, before)


def test_adam_family_uses_the_fused_kernel_on_cpu():
    opt = adamw(parameter_groups(model(), 1e-4), lr=1e-3, weight_decay=1e-4, epochs=1, steps_per_epoch=1)
    assert opt.defaults["fused"] is True


def _spam(net, **options):
    base = dict(lr=1e-3, weight_decay=0.0, epochs=1, steps_per_epoch=100, max_grad_norm=0.0)
    return adamwspam(parameter_groups(net, 0.0), **(base | options))


def test_spam_reset_leaves_the_moments_of_the_step_for_a_mask_update():
    """A momentum reset never runs after a step: what a mask update reads is what the step left."""
    net = model()
    opt = _spam(net, reset_interval=5)
    weight = net[0].weight
    for step in range(1, 6):
        opt.optimizer.zero_grad()
        net(torch.randn(8, 4)).sum().backward()
        opt.process_gradients(step)  # step 5: moments zeroed here, before the step's gradient enters them
        grad = weight.grad.clone()
        opt.step()
        opt.after_step(step)
    state = opt.optimizer.state[weight]
    assert opt.resets == 1
    assert torch.allclose(state["exp_avg"], 0.1 * grad)  # (1 - beta1) g from zero: one step since the reset
    assert torch.allclose(state["exp_avg_sq"], 0.001 * grad * grad)
    assert torch.count_nonzero(state["exp_avg_sq"]) > 0


def _grad_with_spike(net, spike):
    opt_grad = net[0].weight.grad
    opt_grad.fill_(0.01)
    opt_grad[0, 0] = spike


def _clip_run(rule, steps, **options):
    """Steps of constant 0.01 gradients with a spike of 1e3 in one element at each step in ``steps``."""
    net = model()
    opt = _spam(net, clip_theta=5000.0, clip_rule=rule, **options)
    seen = {}
    for step in range(1, max(steps) + 1):
        opt.optimizer.zero_grad()
        net(torch.randn(8, 4)).sum().backward()
        _grad_with_spike(net, 1e3 if step in steps else 0.01)
        v = opt.optimizer.state.get(net[0].weight, {}).get("exp_avg_sq")
        v = None if v is None else v[0, 0].item()
        opt.process_gradients(step)
        seen[step] = (net[0].weight.grad[0, 0].item(), v, net[0].weight.grad[0, 1].item())
        opt.step()
        opt.after_step(step)
    return seen


def test_spam_clip_follows_the_paper_warmup_after_start_and_reset():
    for step in (3, 10, 12, 13):  # t < N, or t % dT < N: no clipping (10 resets the moments)
        assert _clip_run("spam", {step}, clip_warmup=4, reset_interval=10)[step][0] == 1e3, step
    for step in (4, 9, 14, 16):  # clipping on: g^2 > theta v  ->  sign(g) sqrt(theta v)
        g, v, other = _clip_run("spam", {step}, clip_warmup=4, reset_interval=10)[step]
        assert g == pytest.approx(math.sqrt(5000.0 * v), rel=1e-5) and g < 1e3, step
        assert other == pytest.approx(0.01)  # ordinary elements untouched


def test_spam_original_rule_clips_from_the_first_steps_and_after_resets():
    for step in (2, 11):
        g, v, _ = _clip_run("original", {step}, reset_interval=10)[step]
        assert g == pytest.approx(math.sqrt(5000.0 * (v + 1e-12)), rel=1e-5) and g < 1e3


def test_spam_clip_rule_is_an_explicit_option():
    from prunekit.builtin.optimizers import SPAM_OPTIONS

    options = {o.name: o for o in SPAM_OPTIONS}
    assert options["clip_rule"].default is None and options["clip_rule"].choices == ("spam", "original")
    assert "paper" in options["clip_rule"].help and "5000" in options["clip_theta"].help


def test_spam_defaults_follow_the_paper_and_its_reference_code():
    """Issue 18.2: no options = SPAM (TianjinYellow/SPAM-Optimizer), not the original AdamWPrune settings."""
    opt = _spam(model(), max_grad_norm=None)
    group = opt.optimizer.param_groups[0]
    assert group["eps"] == 1e-6 and group["amsgrad"] is False and group["betas"] == (0.9, 0.999)
    assert opt.max_grad_norm == 0.0 and opt.spike_z == 0.0
    assert (opt.reset_interval, opt.reset_warmup, opt.clip_theta, opt.clip_rule, opt.clip_warmup) == (
        500,
        150,
        5000.0,
        "spam",
        20,
    )
    old = _spam(model(), max_grad_norm=None, preset="adamwprune")  # what adamwspam was before API 1.5
    group = old.optimizer.param_groups[0]
    assert group["eps"] == 1e-8 and group["amsgrad"] is True and old.max_grad_norm == 1.0 and old.spike_z == 2.0
    assert (old.reset_interval, old.reset_warmup, old.clip_theta) == (0, 0, 0.0)
    assert _spam(model(), preset="adamwprune", clip_theta=50.0).clip_theta == 50.0  # a given option beats the preset


def test_spam_warmup_after_a_reset_is_the_reference_cosine_from_001():
    net = model()
    opt = _spam(net, reset_interval=500)
    opt._last_reset = 500
    reference = [1 - 0.99 * (1 + math.cos(math.pi * j / 151)) / 2 for j in range(150)]  # CosineDecay(0.99, 150)
    assert [opt.warmup_factor(500 + j) for j in range(150)] == pytest.approx(reference)
    assert opt.warmup_factor(500) == pytest.approx(0.01) and opt.warmup_factor(650) == 1.0


def test_spam_warmup_leaves_the_decoupled_weight_decay_unscaled():
    net = model()
    opt = adamwspam(
        parameter_groups(net, 0.1), lr=1e-2, weight_decay=0.1, epochs=1, steps_per_epoch=100, reset_interval=5, reset_warmup=4
    )
    for step in range(1, 8):
        opt.optimizer.zero_grad()
        net(torch.randn(8, 4)).sum().backward()
        opt.process_gradients(step)
        group = opt.optimizer.param_groups[0]
        assert group["lr"] * group["weight_decay"] == pytest.approx(1e-2 * 0.1)  # what AdamW's decay uses
        opt.step()
        opt.after_step(step)
        assert group["weight_decay"] == 0.1  # between steps the group shows the configured decay
    assert opt.optimizer.param_groups[0]["lr"] < 1e-2  # step 7 is inside the warm-up after the reset at 5


def test_every_spam_option_says_where_it_comes_from():
    from prunekit.builtin.optimizers import SPAM_OPTIONS

    for option in SPAM_OPTIONS:
        assert any(word in option.help for word in ("SPAM", "paper", "AdamWPrune", "prunekit")), option.name


@pytest.mark.parametrize("rule", ["spam", "original"])
def test_spam_never_clips_a_weight_without_second_moment_history(rule):
    """v == 0 (a weight RigL/SET just grew, or one returning under movement): the gradient passes unclipped."""
    net = model()
    opt = _spam(net, clip_theta=5000.0, clip_rule=rule, clip_warmup=0, reset_interval=0)
    weight = net[0].weight
    for step in range(1, 4):
        _step(opt, net, step=step)
    opt.optimizer.state[weight]["exp_avg_sq"][0, 0] = 0.0  # as _grow leaves a new weight
    opt.optimizer.state[weight]["exp_avg"][0, 0] = 0.0
    opt.optimizer.zero_grad()
    net(torch.randn(8, 4)).sum().backward()
    _grad_with_spike(net, 1e3)
    weight.grad[0, 1] = 1e3  # a spike on a weight with history is still clipped
    opt.process_gradients(4)
    assert weight.grad[0, 0] == 1e3
    assert 0 < weight.grad[0, 1] < 1e3


def _moments(opt, net):
    return {k: v.clone() for k, v in opt.optimizer.state[net[0].weight].items() if k != "step"}


@pytest.mark.parametrize("options", [{}, {"clip_theta": 50.0, "clip_rule": "original"}, {"clip_theta": 5000.0, "clip_warmup": 0}])
def test_spam_infinite_gradient_norm_touches_no_state(options):
    """An fp16 overflow under GradScaler: the step is skipped; moments and norm history stay as they were."""
    net = model()
    opt = _spam(net, min_history=2, **options)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for step in range(1, 13):
        opt.optimizer.zero_grad()
        scaler.scale(net(torch.randn(8, 4)).sum()).backward()
        if step == 12:
            net[0].weight.grad[0, 0] = float("inf")  # what an fp16 overflow leaves
            moments, norms, spikes = _moments(opt, net), list(opt.norms), opt.spikes
        scaler.unscale_(opt.optimizer)
        opt.process_gradients(step)
        scaler.step(opt.optimizer)
        scaler.update()
    assert opt.nonfinite == 1 and opt.spikes == spikes
    assert list(opt.norms) == norms
    after = _moments(opt, net)
    assert all(torch.equal(after[k], moments[k]) for k in moments)
    assert scaler.get_scale() < 2.0**10  # GradScaler saw the overflow and skipped the step
