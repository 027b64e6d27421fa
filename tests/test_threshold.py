import pytest
import torch

from prunekit.core.sparsity.threshold import kth_smallest, threshold_for_sparsity


def reference(layers, k):
    return torch.cat([t.flatten() for t in layers]).kthvalue(k).values.item()


@pytest.mark.parametrize("seed", range(20))
def test_equals_concatenate_and_kthvalue(seed):
    g = torch.Generator().manual_seed(seed)
    layers = [torch.randn(int(torch.randint(1, 3000, (1,), generator=g)), generator=g) * 10.0 ** (i - 2) for i in range(5)]
    layers[0][:100] = 0.0  # ties at zero
    layers[1][:20] = -0.0  # negative zero
    layers[2][:5] = float("-inf")  # already-pruned positions
    layers[3] = layers[3].abs()  # non-negative layer
    n = sum(t.numel() for t in layers)
    for k in (1, 2, n // 7, n // 2, n - 1, n):
        assert kth_smallest(lambda: iter(layers), k) == reference(layers, k)


def test_order_of_layers_does_not_matter_and_is_deterministic():
    layers = [torch.randn(500), torch.randn(77, 3)]
    a = kth_smallest(lambda: iter(layers), 300)
    b = kth_smallest(lambda: iter(layers[::-1]), 300)
    assert a == b == reference(layers, 300)


def test_threshold_for_sparsity_keeps_the_right_count():
    scores = [torch.arange(1000, dtype=torch.float32).flip(0), torch.arange(1000, 3000, dtype=torch.float32)]
    t = threshold_for_sparsity(lambda: iter(scores), 3000, 0.3)
    kept = sum(int((s > t).sum()) for s in scores)
    assert kept == 3000 - 900
    assert threshold_for_sparsity(lambda: iter(scores), 3000, 0.0) == float("-inf")


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        kth_smallest(lambda: iter([torch.tensor([1.0, float("nan")])]), 1)


def test_k_out_of_range():
    with pytest.raises(ValueError):
        kth_smallest(lambda: iter([torch.ones(3)]), 4)


def _masked_reference(layers, masks, sparsity):
    """Prune exactly k: already-pruned first, then the lowest scores, ties by position."""
    values = torch.cat([l.flatten() for l in layers])
    old = torch.cat([m.flatten() for m in masks])
    k = int(round(sparsity * values.numel()))
    order = torch.sort(values.masked_fill(~old, float("-inf")), stable=True).indices
    pruned_old = int((~old).sum())
    keep = old.clone()
    if k > pruned_old:
        keep[order[:k]] = False
    return list(keep.split([m.numel() for m in masks]))


@pytest.mark.parametrize("chunk", [1 << 18, 7])
@pytest.mark.parametrize("seed", range(12))
def test_update_masks_equals_reference_over_growing_updates(monkeypatch, chunk, seed):
    import prunekit.core.sparsity.threshold as threshold

    monkeypatch.setattr(threshold, "CHUNK", chunk)  # 7: many chunks per layer
    g = torch.Generator().manual_seed(seed)
    layers = [torch.randn(int(torch.randint(1, 400, (1,), generator=g)), generator=g) * 10.0 ** (i - 1) for i in range(4)]
    layers[0][:30] = 0.0
    layers[1][:10] = -0.0
    if seed % 3 == 0:
        layers[3] = torch.zeros(500)  # a tie mass bigger than any other layer: the third-pass path
    masks = [torch.ones(l.shape, dtype=torch.bool) for l in layers]
    for sparsity in (0.0, 0.2, 0.2, 0.5, 0.9):
        expected = _masked_reference(layers, masks, sparsity)
        threshold.update_masks_([lambda l=l: l for l in layers], masks, sparsity)
        assert all(torch.equal(a, b.view_as(a)) for a, b in zip(masks, expected))
        total = sum(m.numel() for m in masks)
        assert sum(int((~m).sum()) for m in masks) == int(round(sparsity * total))  # exactly k


def test_apply_mask_in_chunks(monkeypatch):
    import prunekit.core.sparsity.threshold as threshold

    monkeypatch.setattr(threshold, "CHUNK", 3)
    t = torch.arange(1.0, 11.0).reshape(2, 5)
    mask = t.remainder(3) != 0
    threshold.apply_mask_(t, mask)
    assert t.flatten().tolist() == [1, 2, 0, 4, 5, 0, 7, 8, 0, 10]


def test_ties_prune_exactly_k_first_positions_first():
    import prunekit.core.sparsity.threshold as threshold

    masks = [torch.ones(10, dtype=torch.bool)]
    threshold.update_masks_([lambda: torch.ones(10)], masks, 0.5)
    assert masks[0].tolist() == [False] * 5 + [True] * 5


@pytest.mark.parametrize("chunk", [1 << 18, 3])
@pytest.mark.parametrize("big", [False, True])
def test_ties_across_layers_and_chunks(monkeypatch, chunk, big):
    """Tied scores are pruned in layer order, then position order; exactly k in all.

    ``big``: the tie mass is larger than any layer (the third-pass path).
    """
    import prunekit.core.sparsity.threshold as threshold

    monkeypatch.setattr(threshold, "CHUNK", chunk)
    n = 40 if big else 8
    layers = [torch.full((n,), 2.0), torch.cat([torch.full((n,), 2.0), torch.tensor([1.0, 3.0])]), torch.full((n,), 2.0)]
    layers[1][0] = 0.5  # lower than the tie: pruned first
    masks = [torch.ones(l.shape, dtype=torch.bool) for l in layers]
    total = sum(l.numel() for l in layers)
    for sparsity in (0.25, 0.5, 0.75):
        k = int(round(sparsity * total))
        expected = _masked_reference(layers, masks, sparsity)
        threshold.update_masks_([lambda l=l: l for l in layers], masks, sparsity)
        assert sum(int((~m).sum()) for m in masks) == k
        assert all(torch.equal(a, b) for a, b in zip(masks, expected))


def test_layer_scope_prunes_exactly_k_of_tied_scores():
    from torch import nn

    from prunekit.builtin.pruners import MagnitudePruner
    from prunekit.core.sparsity.targets import prunable_targets

    model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    for scope in ("global", "layer"):
        pruner = MagnitudePruner(prunable_targets(model), scope=scope)
        pruner.update_masks(0.5, 1)
        assert [int((~m).sum()) for m in pruner.masks] == ([16, 0] if scope == "global" else [10, 6])
