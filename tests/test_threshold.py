import pytest
import torch

from prunekit.core.threshold import kth_smallest, threshold_for_sparsity


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
    masked = [l.masked_fill(~m, float("-inf")) for l, m in zip(layers, masks)]
    values = torch.cat([m.flatten() for m in masked])
    k = int(round(sparsity * values.numel()))
    if k <= 0:
        return [m.clone() for m in masks]
    return [m > values.kthvalue(k).values for m in masked]


@pytest.mark.parametrize("chunk", [1 << 18, 7])
@pytest.mark.parametrize("seed", range(12))
def test_update_masks_equals_reference_over_growing_updates(monkeypatch, chunk, seed):
    import prunekit.core.threshold as threshold

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
        assert all(torch.equal(a, b) for a, b in zip(masks, expected))


def test_apply_mask_in_chunks(monkeypatch):
    import prunekit.core.threshold as threshold

    monkeypatch.setattr(threshold, "CHUNK", 3)
    t = torch.arange(1.0, 11.0).reshape(2, 5)
    mask = t.remainder(3) != 0
    threshold.apply_mask_(t, mask)
    assert t.flatten().tolist() == [1, 2, 0, 4, 5, 0, 7, 8, 0, 10]
