"""Every registered pruner (built-in or from an installed plugin) passes the conformance suite."""

import pytest

from prunekit.core.config.options import resolve_options
from prunekit.core.plugins import loading as plugins
from prunekit.testing.pruner_conformance import check_pruner

PRUNERS = sorted(n for n in plugins.get_registry().names("pruners") if n != "none")


@pytest.mark.parametrize("name", PRUNERS)
@pytest.mark.parametrize("scope", ["global", "layer", "erk"])
def test_registered_pruner_conforms(name, scope):
    entry = plugins.get_registry().get("pruners", name)
    scope_option = next((o for o in entry.options if o.name == "scope"), None)
    if scope_option is None and scope != "global":
        pytest.skip(f"{name} has no scope option")
    if scope_option is not None and scope not in scope_option.choices:
        pytest.skip(f"{name} does not offer scope={scope}")
    given = {"scope": scope} if scope_option is not None else {}
    options = resolve_options(entry.options, given, f"pruner '{name}'")
    schedules = entry.metadata["schedules"]
    achieved = check_pruner(entry.factory, options, step_zero=not schedules or "constant" in schedules)
    assert set(achieved) == {0.5, 0.8}


def test_the_suite_catches_a_pruner_that_does_not_prune():
    from prunekit.core.sparsity.pruner import Pruner

    with pytest.raises(AssertionError, match="forward weights are 0.0000 sparse"):
        check_pruner(lambda targets: Pruner(targets))
