"""mask_storage: bool, bits and implicit masks give the same results at 1, 0.125 and 0 bytes per weight."""

import pytest
import torch
from built_runs import run_keeping_parts

from prunekit.core.config.options import resolve_options
from prunekit.core.config.settings import RunConfig
from prunekit.core.plugins import loading as plugins
from prunekit.core.sparsity.masks import BitMasks, ImplicitMasks, MaskStore, make_store
from prunekit.core.sparsity.targets import Target
from prunekit.core.sparsity.threshold import CHUNK
from prunekit.testing.pruner_conformance import check_pruner

STORAGES = ["bool", "bits", "implicit"]


def _targets(*sizes):
    g = torch.Generator().manual_seed(0)
    out = []
    for i, n in enumerate(sizes):
        module = torch.nn.Linear(n, 1, bias=False)
        module.weight.data = torch.randn(1, n, generator=g)
        out.append(Target(f"layer{i}", module))
    return out


@pytest.mark.parametrize("n", [1, 13, 64, CHUNK + 13])
def test_bits_round_trip_and_apply_match_bool(n):
    targets = _targets(n)
    mask = torch.rand(1, n, generator=torch.Generator().manual_seed(n)) > 0.3
    bits, plain = BitMasks(targets), MaskStore(targets)
    bits.write(0, mask.clone())
    plain.write(0, mask.clone())
    assert torch.equal(bits.read(0), mask)
    (stored,) = bits.tensors().values()
    assert stored.dtype == torch.uint8 and stored.numel() == (n + 7) // 8
    assert int(stored[0]) & 1 == int(mask[0, 0]) and (n < 9 or (int(stored[1]) & 1) == int(mask[0, 8]))  # bit j%8 of byte j//8
    a, b = torch.randn(1, n), None
    b = a.clone()
    bits.apply_(0, a)
    plain.apply_(0, b)
    assert torch.equal(a, b) and torch.equal(a, b * mask)


def test_implicit_mask_is_the_zeros_of_the_weight():
    (target,) = _targets(CHUNK + 5)
    store = ImplicitMasks([target])
    grad = torch.ones_like(target.parameter)
    store.apply_(0, grad)
    assert torch.equal(grad, torch.ones_like(grad))  # no mask before the first update
    mask = torch.rand(target.parameter.shape, generator=torch.Generator().manual_seed(1)) > 0.5
    store.write(0, mask)
    assert torch.equal(target.parameter != 0, mask) and store.tensors() == {}
    store.apply_(0, grad)
    assert torch.equal(grad, mask.float())
    assert torch.equal(store.read(0), mask) and torch.equal(store.state()[0], mask)


def test_unknown_storage_is_refused():
    with pytest.raises(ValueError, match="bool, bits, implicit"):
        make_store("nibbles", _targets(3))


def _mask_pruners():
    registry = plugins.get_registry()
    return sorted(
        n for n in registry.names("pruners") if any(o.name == "mask_storage" for o in registry.get("pruners", n).options)
    )


def test_every_bundled_mask_pruner_offers_mask_storage():
    assert {"magnitude", "state", "movement-w0"} <= set(_mask_pruners())


@pytest.mark.parametrize("storage", ["bits", "implicit"])
@pytest.mark.parametrize("name", _mask_pruners())
def test_mask_pruners_conform_with_each_storage(name, storage):
    entry = plugins.get_registry().get("pruners", name)
    options = resolve_options(entry.options, {"mask_storage": storage}, f"pruner '{name}'")
    assert set(check_pruner(entry.factory, options)) == {0.5, 0.8}


def _run(tmp_path, monkeypatch, pruner, storage, optimizer):
    config = RunConfig(
        pruner=pruner,
        optimizer=optimizer,
        pruner_opts={"mask_storage": storage},
        epochs=3,
        sparsity=0.7,
        device="cpu",
        samplers=[],
        out=str(tmp_path / f"{pruner}-{storage}"),
        quiet=True,
    )
    summary, b = run_keeping_parts(monkeypatch, config)
    return summary, [t.parameter.detach().clone() for t in b.targets], b.pruner.masks


@pytest.mark.parametrize("pruner,optimizer", [("magnitude", "adamw"), ("state", "adamwprune")])
def test_a_digits_run_is_identical_whatever_the_storage(tmp_path, monkeypatch, pruner, optimizer):
    runs = {s: _run(tmp_path, monkeypatch, pruner, s, optimizer) for s in STORAGES}
    base_summary, base_weights, base_masks = runs["bool"]
    assert base_summary["schedule"]["mask_updates"] > 10 and base_summary["target_reached"]
    for storage in ("bits", "implicit"):
        summary, weights, masks = runs[storage]
        assert all(torch.equal(a, b) for a, b in zip(weights, base_weights)), storage
        assert all(torch.equal(a, b) for a, b in zip(masks, base_masks)), storage
        for key in ("final_test_accuracy", "best_test_accuracy", "final_train_loss", "achieved_sparsity", "sparsity_counts"):
            assert summary[key] == base_summary[key], (storage, key)
    ledger = {s: runs[s][0]["ledger"] for s in STORAGES}
    prunable = ledger["bool"]["prunable_weights"]
    assert ledger["bool"]["pruner_state"] == prunable
    assert prunable / 8 <= ledger["bits"]["pruner_state"] < prunable / 8 + 8 * len(base_masks)  # padding: < 1 B per layer
    assert ledger["implicit"]["pruner_state"] == 0 and ledger["implicit"]["pruner_state_bytes_per_prunable_weight"] == 0
    assert runs["bits"][0]["pruner_options"]["mask_storage"] == "bits"


@pytest.mark.parametrize("store_class", [BitMasks, ImplicitMasks])
@pytest.mark.parametrize("tied", [False, True])  # tied: a tie mass bigger than any layer, the third-pass path
def test_a_global_update_holds_one_layer_mask_at_a_time(store_class, tied):
    import weakref

    from prunekit.core.sparsity.pruner import MaskPruner

    handed_out: list = []
    alive_at_read = []

    class Spy(store_class):
        def read(self, i):
            alive_at_read.append(sum(r() is not None for r in handed_out))
            mask = super().read(i)
            handed_out.append(weakref.ref(mask))
            return mask

    class Magnitude(MaskPruner):
        fresh_scores = True

        def score(self, index, target):
            return target.parameter.detach().abs()

    sizes = (40, 900, 40) if tied else (300, 500, 200)
    targets, same = _targets(*sizes), _targets(*sizes)
    if tied:
        for t in (targets[1], same[1]):
            t.parameter.data.fill_(0.5)
    pruner, reference = Magnitude(targets), Magnitude(same)
    pruner.store = Spy(targets)
    for sparsity in (0.3, 0.5, 0.6):
        pruner.update_masks(sparsity, 1)
        reference.update_masks(sparsity, 1)
        reads = len(alive_at_read)
        equal = all(torch.equal(a, b) for a, b in zip(pruner.masks, reference.masks))  # the property holds them all
        assert equal
        del alive_at_read[reads:]
    assert len(alive_at_read) > 3 * len(sizes) and max(alive_at_read) == 0  # no earlier layer's mask alive at a read
