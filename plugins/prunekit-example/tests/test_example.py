"""The template plugin: registered through its entry point, and it passes the core's pruner conformance suite."""

from __future__ import annotations

import pytest

from prunekit.api import UsageError
from prunekit.testing import LeNet5, load_plugins, prunable_targets, resolve_options
from prunekit.testing.pruner_conformance import check_pruner
from prunekit_example import RandomPruner


def test_registered_with_its_distribution_and_options():
    plugins = load_plugins()
    assert plugins.infos["random"].errors == []
    entry = plugins.registry.get("pruners", "random-scores")
    assert entry.distribution == "prunekit-example" and entry.factory is RandomPruner
    assert resolve_options(entry.options, {"seed": "3"}, "pruner 'random-scores'") == {"scope": "global", "seed": 3}
    with pytest.raises(UsageError, match="Option 'seed' of pruner 'random-scores' must be at least 0"):
        resolve_options(entry.options, {"seed": "-1"}, "pruner 'random-scores'")


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_conforms(scope):
    check_pruner(RandomPruner, {"scope": scope, "seed": 1})


def test_the_same_seed_prunes_the_same_weights():
    masks = []
    for _ in range(2):
        pruner = RandomPruner(prunable_targets(LeNet5()), seed=7)
        pruner.update_masks(0.5, step=1)
        masks.append([m.clone() for m in pruner.masks])
    assert all((a == b).all() for a, b in zip(*masks))
    assert set(pruner.state_tensors()) == {f"{what}:{t.name}" for t in pruner.targets for what in ("mask", "score")}
