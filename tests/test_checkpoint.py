"""The checkpoint module: atomic saves, validated loads, RNG and optimizer state round trips."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy
import pytest
import torch
from torch.utils.data import TensorDataset

from prunekit.builtin.optimizers import adamwspam
from prunekit.core.data.loaders import ImageTensors, SeededOrder, TensorBatches, make_loader
from prunekit.core.data.order import data_generators, skip_batches
from prunekit.core.rundir import checkpoint as ck
from prunekit.core.train.optim import parameter_groups


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def _checkpoint(model: torch.nn.Module, **identity) -> ck.Checkpoint:
    return ck.Checkpoint(
        identity=ck.identity_of(model, model="mlp", **identity),
        epoch=2,
        step=10,
        batch=0,
        model=model.state_dict(),
        optimizer={},
        pruner={"masks": [torch.ones(3, dtype=torch.bool), None]},
        scaler=None,
        rng=ck.capture_rng({}),
        history=[{"epoch": 1, "test_accuracy": 50.0}],
    )


def test_round_trip_and_atomic_file(tmp_path: Path):
    model = _model()
    path = tmp_path / "checkpoint.pt"
    size = ck.save(path, _checkpoint(model))
    assert size == path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left
    loaded = ck.load(path)
    assert loaded.epoch == 2 and loaded.step == 10 and loaded.history[0]["test_accuracy"] == 50.0
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model[key], value)
    ck.check_identity(loaded.identity, ck.identity_of(model, model="mlp"), path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "not-a-checkpoint"])
def test_damaged_files_are_one_line_errors(tmp_path: Path, damage: str):
    path = tmp_path / "checkpoint.pt"
    ck.save(path, _checkpoint(_model()))
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(data[:100] + bytes(200) + data[300:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ck.CheckpointError) as info:
        ck.load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_pickled_code_is_refused(tmp_path: Path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"identity": Path("x")}, path)  # a non-tensor object: needs pickled code to load
    with pytest.raises(ck.CheckpointError, match="truncated or corrupt"):
        ck.load(path)


def test_other_major_version_and_other_model_are_refused(tmp_path: Path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    cp = _checkpoint(_model())
    cp.identity["prunekit"] = "99.0.0"
    ck.save(path, cp)
    with pytest.raises(ck.CheckpointError, match="prunekit 99.0.0"):
        ck.load(path)
    ck.save(path, _checkpoint(_model()))
    other = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    with pytest.raises(ck.CheckpointError, match="another model"):
        ck.check_identity(ck.load(path).identity, ck.identity_of(other, model="mlp"), path)
    with pytest.raises(ck.CheckpointError, match="model 'mlp'"):
        ck.check_identity(ck.load(path).identity, ck.identity_of(_model(), model="lenet5"), path)


def test_rng_states_restored(tmp_path: Path):
    cp = _checkpoint(_model())
    order = torch.Generator().manual_seed(5)
    random.seed(1)
    numpy.random.seed(2)
    torch.manual_seed(3)
    numpy.random.normal()  # leaves a cached gaussian in NumPy's state
    state = ck.capture_rng({"order": order})
    path = tmp_path / "checkpoint.pt"
    cp.rng = state
    ck.save(path, cp)

    def draw():
        return (random.random(), numpy.random.normal(), torch.rand(3), torch.randperm(10, generator=order))

    first = draw()
    ck.restore_rng(ck.load(path).rng, {"order": order})
    second = draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    with pytest.raises(ck.CheckpointError, match="data generators"):
        ck.restore_rng(state, {})


def test_spam_optimizer_state_round_trip():
    def make():
        model = _model()
        opt = adamwspam(
            parameter_groups(model, 0.01),
            lr=1e-2,
            weight_decay=0.01,
            epochs=3,
            steps_per_epoch=4,
            reset_interval=3,
            reset_warmup=2,
            min_history=2,
        )
        return model, opt

    def steps(model, opt, start, count):
        gen = torch.Generator().manual_seed(start)
        for step in range(start, start + count):
            x = torch.randn(8, 4, generator=gen)
            model.zero_grad()
            model(x).square().mean().backward()
            opt.process_gradients(step)
            opt.step()
            opt.after_step(step)
            if step % 4 == 0:
                opt.end_epoch(step // 4)

    model_a, opt_a = make()
    steps(model_a, opt_a, 1, 5)
    saved_model = {k: v.clone() for k, v in model_a.state_dict().items()}
    saved = copy.deepcopy(opt_a.state_dict())
    assert saved["extra"]["resets"] == 1 and len(saved["extra"]["norms"]) == 5
    steps(model_a, opt_a, 6, 6)

    model_b, opt_b = make()
    model_b.load_state_dict(saved_model)
    opt_b.load_state_dict(saved)
    steps(model_b, opt_b, 6, 6)
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(a, b), name
    assert list(opt_a.norms) == list(opt_b.norms) and opt_a.resets == opt_b.resets == 3


@pytest.mark.parametrize("kind", ["tensors", "images", "folder"])
def test_loaders_skip_batches_of_the_same_order(kind: str):
    data = TensorDataset(torch.arange(10.0).unsqueeze(1), torch.arange(10))
    images = ImageTensors(torch.randint(0, 256, (10, 1, 6, 6), dtype=torch.uint8), torch.arange(10), (0.5,), (0.2,), 2, True)
    dataset = {"tensors": data, "images": images, "folder": torch.utils.data.Subset(data, range(10))}[kind]
    loader = make_loader(dataset, 3, shuffle=True, seed=4, workers=0)
    assert isinstance(loader, TensorBatches) or isinstance(loader.sampler, SeededOrder)
    generator = data_generators(loader)["order"]
    start = generator.get_state()
    full = list(loader)
    generator.set_state(start)
    skip_batches(loader, 2)
    resumed = list(loader)  # the same order and, for images, the same crops and flips
    assert len(resumed) == len(full) - 2
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(resumed, full[2:]))
    assert [labels.tolist() for _, labels in loader] != [labels.tolist() for _, labels in full]  # next epoch: new order
