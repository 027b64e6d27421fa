"""prunekit.inference: a batch's peak memory on CPU, against bytes computed by hand."""

from __future__ import annotations

import torch
from torch import nn

from prunekit.inference import compare, peak_batch_bytes

BATCH, WIDTH = 64, 1024
HIDDEN = BATCH * WIDTH * 4  # one float32 activation of the hidden layer


def _mlp(inplace: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, WIDTH), nn.ReLU(inplace=inplace), nn.Linear(WIDTH, 10)).eval()


def test_peak_counts_the_activations_alive_together() -> None:
    x = torch.randn(BATCH, 256)
    assert peak_batch_bytes(_mlp(inplace=False), x) == 2 * HIDDEN  # fc1's output and ReLU's, both held
    assert peak_batch_bytes(_mlp(inplace=True), x) == HIDDEN + BATCH * 10 * 4  # one hidden buffer, then fc2's output


def test_every_cpu_form_reports_its_peak_beside_its_weights() -> None:
    model = _mlp(inplace=False)
    with torch.no_grad():
        model[0].weight[torch.rand(model[0].weight.shape, generator=torch.Generator().manual_seed(1)) < 0.9] = 0
    result = compare(model, torch.randn(BATCH, 256), warmup=1, repeats=5)
    dense, csr = result["forms"]["dense"], result["forms"]["csr"]
    assert dense["peak_batch_bytes"] == 2 * HIDDEN
    assert csr["peak_batch_bytes"] >= 2 * HIDDEN  # the CSR product's transposed output and temporaries come on top
    assert csr["weight_bytes"] < dense["weight_bytes"]
