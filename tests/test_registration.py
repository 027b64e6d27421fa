"""Typed registration: metadata types, options only where a kind takes them, declared
options matching the factory's signature, and "dense" as a declared property."""

import types

import pytest

from prunekit.api import MASK_STORAGE_OPTION, STRUCTURE_OPTION, MaskPruner, Option, hookimpl
from prunekit.core.plugins import loading as plugins
from prunekit.core.plugins.kinds import KIND_SPECS


def loaded_with(**hooks):
    ns = types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})
    return plugins.reset({"toy": ns})


def errors_of(**hooks) -> list[str]:
    return loaded_with(**hooks).infos["toy"].errors


SCOPE = Option("scope", str, "global", "threshold scope", choices=("global", "layer"))


class Scoped(MaskPruner):
    def score(self, index, target):
        return target.parameter.detach().abs()


@pytest.mark.parametrize(
    "register_call, message",
    [
        (
            lambda r: r("p", lambda targets: None, requires="exp_avg_sq"),
            "pruner 'p': metadata requires='exp_avg_sq' must be a tuple of names",
        ),
        (lambda r: r("p", lambda targets: None, requires=("exp_avg", 3)), "must be a tuple of names"),
        (lambda r: r("p", lambda targets: None, dense="yes"), "metadata dense='yes' must be True or False"),
        (
            lambda r: r("p", lambda targets, scope="layer": None, options=(SCOPE,)),
            "option 'scope' defaults to 'global' but the factory's default is 'layer'",
        ),
        (lambda r: r("p", lambda targets: None, options=(SCOPE,)), "declared option 'scope' is not a parameter of the factory"),
        (lambda r: r("p", lambda targets, seed=0: None), "factory parameter 'seed' is not a declared option"),
        (lambda r: r("p", lambda: None), "the core calls factory(targets, **options), which this factory cannot accept"),
        (lambda r: r("p", lambda targets, **o: None, options=SCOPE), "options must be a tuple of prunekit.api.Option"),
        (lambda r: r("p", lambda targets, **o: None, options=(SCOPE, SCOPE)), "options declared twice: ['scope']"),
        (
            lambda r: r("p", lambda targets, **o: None, options=(Option("n", int, 0, minimum=1),)),
            "option 'n': its default is invalid",
        ),
        (lambda r: r("p", lambda targets, **o: None, options=(Option("n", list, []),)), "has type <class 'list'>"),
    ],
)
def test_a_bad_pruner_registration_is_a_plugin_error(register_call, message):
    def register_pruners(register):
        register_call(register)

    errors = errors_of(register_pruners=register_pruners)
    assert len(errors) == 1 and message in errors[0], errors
    assert "p" not in plugins.get_registry().names("pruners")


def test_options_given_to_a_kind_that_takes_none_are_an_error():
    def register_samplers(register):
        register("s", lambda device: None, options=(Option("interval", float, 1.0),), scope="device")

    def register_models(register):
        register("m", lambda num_classes, in_channels, image_size: None, options=(Option("width", int, 1),))

    errors = errors_of(register_samplers=register_samplers, register_models=register_models)
    assert "sampler 's': samplers take no options (the core calls factory(device)); drop options=" in errors
    # models take options (--model-opt), checked against the factory like any other kind's
    assert any("model 'm': declared option 'width' is not a parameter of the factory" in e for e in errors), errors


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"lr": 0}, "metadata lr=0 must be a number > 0"),
        ({"lr": "1e-3"}, "metadata lr='1e-3' must be a number > 0"),
        ({"state": "exp_avg"}, "metadata state='exp_avg' must be a tuple of names"),
        ({"weight_decay": True}, "must be None or a number >= 0"),
        ({"default_pruner": ""}, "must be None or a pruner name"),
    ],
)
def test_optimizer_metadata_is_type_checked(metadata, message):
    def register_optimizers(register):
        register("o", lambda param_groups, *, lr, weight_decay, epochs, steps_per_epoch: None, **metadata)

    errors = errors_of(register_optimizers=register_optimizers)
    assert len(errors) == 1 and message in errors[0]


def test_a_good_registration_keeps_defaults_and_tuples():
    def register_pruners(register):
        register(
            "p", Scoped, options=(SCOPE, MASK_STORAGE_OPTION, STRUCTURE_OPTION), requires=["exp_avg"]
        )  # a list of names is fine
        register("q", lambda targets, **options: Scoped(targets, **options), options=(SCOPE,))  # **options takes any

    loaded = loaded_with(register_pruners=register_pruners)
    assert loaded.infos["toy"].errors == []
    entry = loaded.registry.get("pruners", "p")
    assert entry.metadata["requires"] == ("exp_avg",) and entry.metadata["dense"] is False
    assert loaded.registry.get("pruners", "q").metadata["dense"] is False


def test_the_mismatch_is_shown_by_prunekit_plugins(run_cli):
    def register_pruners(register):
        register("p", lambda targets, scope="layer": None, options=(SCOPE,))

    loaded_with(register_pruners=register_pruners)
    result = run_cli("plugins")
    assert "  error: pruner 'p': option 'scope' defaults to 'global' but the factory's default is 'layer'" in result.out


def test_dense_is_declared_not_named():
    registry = plugins.get_registry()
    dense = [n for n in registry.names("pruners") if registry.get("pruners", n).metadata["dense"]]
    assert dense == ["none"]


def test_every_bundled_registration_is_valid():
    for info in plugins.get_plugins().infos.values():
        assert info.errors == [], (info.name, info.errors)


def test_kinds_describe_the_factory_call():
    assert KIND_SPECS["optimizers"].call() == ("factory(param_groups, lr=, weight_decay=, epochs=, steps_per_epoch=, **options)")


def test_a_declared_dense_pruner_runs_once_in_a_matrix():
    import textwrap

    from prunekit.matrix.expand import expand
    from prunekit.matrix.spec import spec_from_text

    def register_pruners(register):
        register("toy-dense", lambda targets: Scoped(targets), dense=True)

    registry = loaded_with(register_pruners=register_pruners).registry
    text = "optimizers: [adamw]\npruners: [toy-dense, magnitude]\nsparsities: [0.5, 0.9]\n"
    plan = expand(spec_from_text(textwrap.dedent(text), "test.yaml", "test", None), registry)
    dense = [r.config for r in plan.runs if r.config.pruner == "toy-dense"]
    assert [(c.sparsity, c.pruner_opts) for c in dense] == [(0.0, {})]
