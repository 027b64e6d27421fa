"""Registration, option validation and state round trips."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from prunekit.api import UsageError
from prunekit.testing import LeNet5, load_plugins, prunable_targets, resolve_options
from prunekit_movement import MovementPruner, MovementW0Pruner


def _make(name: str, model, **given):
    entry = load_plugins().registry.get("pruners", name)
    options = resolve_options(entry.options, given, f"pruner '{name}'")
    return entry.factory(prunable_targets(model), **options)


def test_both_pruners_are_registered_through_the_entry_point():
    plugins = load_plugins()
    assert plugins.infos["movement"].distribution == "prunekit-movement"
    assert plugins.infos["movement"].registered["pruners"] == ["movement", "movement-w0"]
    assert plugins.infos["movement"].errors == []
    assert isinstance(_make("movement", LeNet5()), MovementPruner)
    assert isinstance(_make("movement-w0", LeNet5()), MovementW0Pruner)


def test_options_resolve_from_strings():
    pruner = _make("movement", LeNet5(), lr_score="0.01", scope="layer")
    assert (pruner.lr_score, pruner.scope) == (0.01, "layer")
    default = _make("movement", LeNet5())
    assert (default.lr_score, default.scope) == (None, "global")


@pytest.mark.parametrize(
    "name, given, message",
    [
        ("movement", {"lr_score": "0"}, "Option 'lr_score' of pruner 'movement' must be greater than 0.0, got '0'."),
        ("movement", {"lr_score": "-1e-3"}, "Option 'lr_score' of pruner 'movement' must be greater than 0.0"),
        ("movement", {"lr_score": "nan"}, "Option 'lr_score' of pruner 'movement' must be a finite number, got 'nan'."),
        ("movement", {"lr_score": "inf"}, "must be a finite number"),
        ("movement", {"lr_score": "fast"}, "Option 'lr_score' of pruner 'movement' must be float, got 'fast'."),
        (
            "movement",
            {"scope": "model"},
            "Option 'scope' of pruner 'movement' must be one of: global, layer, uniform, erk; got 'model'.",
        ),
        ("movement", {"lr": "1"}, "Unknown option 'lr' for pruner 'movement'. Valid options: lr_score, scope."),
        (
            "movement-w0",
            {"lr_score": "1"},
            "Unknown option 'lr_score' for pruner 'movement-w0'. Valid options: scope, mask_storage, structure.",
        ),
        ("movement-w0", {"scope": "all"}, "Option 'scope' of pruner 'movement-w0' must be one of: global, layer"),
    ],
)
def test_invalid_options_raise_one_clear_usage_error(name, given, message):
    with pytest.raises(UsageError) as info:
        _make(name, LeNet5(), **given)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_movement_refuses_an_already_parametrized_weight():
    model = LeNet5()
    _make("movement", model)
    with pytest.raises(ValueError, match="already parametrized"):
        _make("movement", model)


def _train(model, pruner, optimizer, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        inputs = torch.randn(8, 1, 32, 32, generator=generator)
        F.cross_entropy(model(inputs), torch.randint(0, 10, (8,), generator=generator)).backward()
        pruner.before_step(step)
        optimizer.step()
        if step % 2 == 0:
            pruner.update_masks(0.3 * step / steps, step)
        pruner.enforce()


@pytest.mark.parametrize("name", ["movement", "movement-w0"])
def test_state_dict_round_trip_resumes_identically(name):
    torch.manual_seed(0)
    model_a = LeNet5()
    pruner_a = _make(name, model_a)
    optimizer_a = torch.optim.AdamW(model_a.parameters(), lr=1e-2)
    pruner_a.bind(optimizer_a)
    _train(model_a, pruner_a, optimizer_a, 4, seed=1)

    torch.manual_seed(123)  # different initial weights: everything must come from the state
    model_b = LeNet5()
    pruner_b = _make(name, model_b)
    optimizer_b = torch.optim.AdamW(model_b.parameters(), lr=1e-2)
    pruner_b.bind(optimizer_b)
    model_b.load_state_dict(model_a.state_dict())
    optimizer_b.load_state_dict(copy.deepcopy(optimizer_a.state_dict()))  # torch shares, not copies
    pruner_b.load_state_dict(pruner_a.state_dict())

    state_a, state_b = pruner_a.state_tensors(), pruner_b.state_tensors()
    assert sorted(state_a) == sorted(state_b) and state_a
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert all(state_a[k].data_ptr() != state_b[k].data_ptr() for k in state_a)  # copies, not shared
    probe = torch.randn(2, 1, 32, 32)
    model_a.eval(), model_b.eval()
    assert torch.equal(model_a(probe), model_b(probe))  # the forward pass sees the loaded masks
    model_a.train(), model_b.train()

    _train(model_a, pruner_a, optimizer_a, 4, seed=2)
    _train(model_b, pruner_b, optimizer_b, 4, seed=2)
    state_a, state_b = pruner_a.state_tensors(), pruner_b.state_tensors()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert all(torch.equal(a, b) for a, b in zip(model_a.parameters(), model_b.parameters()))


def test_load_state_dict_rejects_a_mismatched_prunable_set():
    pruner = _make("movement", LeNet5())
    state = pruner.state_dict()
    with pytest.raises(ValueError, match="count"):
        pruner.load_state_dict({"scores": state["scores"][:-1], "masks": state["masks"][:-1]})
    bad = [torch.zeros(3, 3)] + state["scores"][1:]
    with pytest.raises(ValueError, match="shape"):
        pruner.load_state_dict({"scores": bad, "masks": state["masks"]})
