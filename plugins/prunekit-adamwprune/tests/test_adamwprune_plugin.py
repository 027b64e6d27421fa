"""Registration through the entry point, metadata, and option validation."""

from __future__ import annotations

import pytest
import torch

from prunekit.api import UsageError
from prunekit.testing import load_plugins, resolve_options
from prunekit_adamwprune import StatePruner, adamwprune, state


@pytest.fixture(scope="module")
def registry():
    plugins = load_plugins()
    assert plugins.infos["adamwprune"].errors == []
    return plugins.registry


def test_registered_by_this_distribution(registry):
    pruner = registry.get("pruners", "state")
    optimizer = registry.get("optimizers", "adamwprune")
    assert pruner.distribution == optimizer.distribution == "prunekit-adamwprune"
    assert pruner.factory is state and optimizer.factory is adamwprune
    assert pruner.metadata["requires"] == ("exp_avg", "exp_avg_sq")
    assert optimizer.metadata["state"] == ("exp_avg", "exp_avg_sq")
    assert optimizer.metadata["default_pruner"] == "state"
    assert optimizer.metadata["lr"] == 1e-3


def test_scope_option_is_the_builtin_one(registry):
    mine = {o.name: o for o in registry.get("pruners", "state").options}
    builtin = {o.name: o for o in registry.get("pruners", "magnitude").options}
    assert mine["scope"] == builtin["scope"]
    assert mine["variant"].choices == ("bitter7", "bitter0", "bitter3", "fisher")
    assert mine["variant"].default == "bitter7"


def test_defaults_resolve(registry):
    entry = registry.get("pruners", "state")
    assert resolve_options(entry.options, {}, "pruner 'state'") == {
        "variant": "bitter7",
        "scope": "global",
        "eps": 1e-8,
        "mask_storage": "bool",
        "structure": "unstructured",
    }
    assert resolve_options(entry.options, {"variant": "fisher", "eps": "1e-6"}, "pruner 'state'")["eps"] == 1e-6


@pytest.mark.parametrize(
    "given, match",
    [
        ({"variant": "bitter9"}, "Option 'variant' of pruner 'state' must be one of: bitter7, bitter0, bitter3, fisher"),
        ({"scope": "model"}, "Option 'scope' of pruner 'state' must be one of: global, layer"),
        ({"eps": "-1"}, "Option 'eps' of pruner 'state' must be greater than 0.0"),
        ({"eps": "tiny"}, "must be float"),
        ({"varient": "bitter0"}, "Unknown option 'varient' for pruner 'state'. Valid options: variant, scope, eps"),
    ],
)
def test_bad_options_are_one_line_usage_errors(registry, given, match):
    entry = registry.get("pruners", "state")
    with pytest.raises(UsageError, match=match) as info:
        resolve_options(entry.options, given, "pruner 'state'")
    assert "\n" not in str(info.value)


def test_factory_builds_the_pruner():
    layer = torch.nn.Linear(3, 2)
    from prunekit.testing import prunable_targets

    p = state(prunable_targets(layer), variant="bitter3", scope="layer", eps=1e-4)
    assert isinstance(p, StatePruner) and (p.variant, p.scope, p.eps) == ("bitter3", "layer", 1e-4)


def test_adamwprune_is_adamw_with_seed_settings():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    from prunekit.testing import parameter_groups

    opt = adamwprune(parameter_groups(model, 5e-4), lr=2e-3, weight_decay=5e-4, epochs=1, steps_per_epoch=1)
    assert type(opt) is torch.optim.AdamW
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    for g in opt.param_groups:
        assert g["betas"] == (0.9, 0.999) and g["eps"] == 1e-8 and g["amsgrad"] is False and g["lr"] == 2e-3


def test_adamwprune_matches_plain_adamw_numerically():
    """The fused kernel computes the same AdamW update as torch's default path."""
    from prunekit.testing import parameter_groups

    torch.manual_seed(0)
    # (no batch norm right after a biased layer: that bias gets ~0 gradients, which Adam
    # turns into sign noise, so two correct implementations would drift apart)
    a = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    b = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    b.load_state_dict(a.state_dict())
    mine = adamwprune(parameter_groups(a, 0.1), lr=1e-2, weight_decay=0.1, epochs=1, steps_per_epoch=1)
    plain = torch.optim.AdamW(parameter_groups(b, 0.1), lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    for step in range(20):
        x = torch.randn(8, 6, generator=torch.Generator().manual_seed(step))
        for model, opt in ((a, mine), (b, plain)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["bitter7", "bitter0", "bitter3", "fisher"])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_every_variant_passes_the_core_pruner_conformance_suite(variant, scope):
    from prunekit.testing.pruner_conformance import check_pruner

    achieved = check_pruner(state, {"variant": variant, "scope": scope, "eps": 1e-8})
    assert set(achieved) == {0.5, 0.8}
