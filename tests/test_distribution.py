"""ERK densities by hand for LeNet-5 (Evci et al. 2020, with the rule for layers above density 1)."""

import pytest

from prunekit.core.sparsity.distribution import erk_densities, layer_sparsities, prune_counts

LENET = [(6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84)]  # conv1, conv2, fc1, fc2, fc3
N = [150, 2400, 48000, 10080, 840]


def test_lenet5_erk_at_90_by_hand():
    # raw = sum(shape) / prod(shape): 17/150, 32/2400, 520/48000, 204/10080, 94/840
    # eps * sum(raw * n) = kept  ->  eps * (17 + 32 + 520 + 204 + 94) = 0.1 * 61470
    eps = 6147 / 867
    want = [17 / 150 * eps, 32 / 2400 * eps, 520 / 48000 * eps, 204 / 10080 * eps, 94 / 840 * eps]
    assert all(d < 1 for d in want)  # no layer exceeds density 1 at 90%
    assert erk_densities(LENET, 0.9) == pytest.approx(want, rel=1e-12)


def test_lenet5_erk_at_70_keeps_conv1_then_fc3_dense():
    # eps = 18441 / 867 = 21.27: conv1 (raw 0.1133) would be 2.41 -> dense; then fc3 (0.1119) -> dense;
    # the rest keep 0.3 * 60480 - 0.7 * (150 + 840) = 17451 over 32 + 520 + 204 = 756
    eps = 17451 / 756
    want = [1.0, 32 / 2400 * eps, 520 / 48000 * eps, 204 / 10080 * eps, 1.0]
    got = erk_densities(LENET, 0.7)
    assert got == pytest.approx(want, rel=1e-12)
    assert sum(d * n for d, n in zip(got, N)) == pytest.approx(0.3 * 61470)


def test_prune_counts_round_each_layer():
    assert prune_counts(LENET, 0.5, "layer") == [75, 1200, 24000, 5040, 420]
    erk = prune_counts(LENET, 0.9, "erk")
    assert erk == [round((1 - d) * n) for d, n in zip(erk_densities(LENET, 0.9), N)]
    assert abs(sum(erk) - 0.9 * 61470) <= len(N) / 2
    assert layer_sparsities(LENET, 0.0, "erk") == [0.0] * 5


def test_global_has_no_fixed_split_and_bad_sparsities_are_refused():
    with pytest.raises(ValueError, match="fixed per-layer"):
        layer_sparsities(LENET, 0.5, "global")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        erk_densities(LENET, 1.0)
