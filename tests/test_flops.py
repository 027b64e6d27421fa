"""FLOPs: LeNet-5 against hand-computed figures, and training FLOPs following the real density."""

from __future__ import annotations

import pytest
import torch

from prunekit.builtin.models import lenet5
from prunekit.core.config.settings import RunConfig
from prunekit.core.measure.flops import ForwardFlops, TrainingFlops, count_forward
from prunekit.core.run.runner import run
from prunekit.core.sparsity.targets import prunable_targets
from prunekit.report.build import build_report

# 2 FLOPs per multiply-add, one 32x32 example: conv1 6x1x5x5 at 28x28, conv2 16x6x5x5 at 10x10, fc 400-120-84-10
LENET5 = {
    "features.0.weight": 2 * 6 * 25 * 28 * 28,  # 235,200
    "features.4.weight": 2 * 16 * 6 * 25 * 10 * 10,  # 480,000
    "classifier.1.weight": 2 * 400 * 120,  # 96,000
    "classifier.3.weight": 2 * 120 * 84,  # 20,160
    "classifier.5.weight": 2 * 84 * 10,  # 1,680
}
DIGITS_TRAIN_EXAMPLES = 1438  # 45 steps of batch 32 (the last one 30)


def test_lenet5_forward_flops_are_the_hand_computed_ones():
    model = lenet5(10, 1, 32)
    forward = count_forward(model, torch.zeros(4, 1, 32, 32), prunable_targets(model))
    assert forward.per_layer == LENET5
    assert forward.total == sum(LENET5.values()) == 833_040


def test_training_flops_count_dense_gradient_steps_as_rigl_does():
    model = lenet5(10, 1, 32)
    targets = prunable_targets(model)
    forward = ForwardFlops(833_040, dict(LENET5))
    with torch.no_grad():
        targets[1].parameter[:8].zero_()  # conv2 at density 0.5
    flops = TrainingFlops(targets)
    flops.add_step(10)
    flops.add_step(10, dense_gradient=True)
    nonzero = 833_040 - 0.5 * LENET5["features.4.weight"]
    assert forward.nonzero({t.name: (0.5 if i == 1 else 1.0) for i, t in enumerate(targets)}) == nonzero
    assert flops.total(forward) == pytest.approx(10 * 3 * nonzero + 10 * (2 * nonzero + 833_040))
    again = TrainingFlops(targets, flops.state_dict())  # what a checkpoint restores
    assert again.total(forward) == flops.total(forward)


def test_summary_flops_of_a_dense_and_a_pruned_run(tmp_path):
    dense = run(RunConfig(pruner="none", epochs=1, out=str(tmp_path / "d"), quiet=True))[1]["flops"]
    assert dense["forward_dense"] == dense["forward_nonzero"] == 833_040
    assert dense["theoretical_speedup"] == dense["compression_ratio"] == 1.0
    assert dense["training_total"] == 3 * 833_040 * DIGITS_TRAIN_EXAMPLES
    summary = run(RunConfig(schedule="constant", sparsity=0.9, epochs=1, out=str(tmp_path / "c"), quiet=True))[1]
    flops = summary["flops"]
    layers = flops["per_layer"]
    assert {name: layer["forward_dense"] for name, layer in layers.items()} == LENET5
    nonzero = sum(layer["forward_dense"] * layer["density"] for layer in layers.values())
    assert flops["forward_nonzero"] == round(nonzero) and flops["theoretical_speedup"] == pytest.approx(833_040 / nonzero)
    assert flops["theoretical_speedup"] > 2  # global magnitude at 90% prunes the cheap fc1 most: ~2.2x, not 10x
    counts = summary["sparsity_counts"]
    assert flops["compression_ratio"] == counts["all_total"] / (counts["all_total"] - counts["all_zeros"])
    assert flops["training_total"] == pytest.approx(3 * nonzero * DIGITS_TRAIN_EXAMPLES, rel=1e-9)
    report = build_report(tmp_path)
    text = report.markdown.read_text()
    assert "theoretical speed-up" in text and f"{flops['theoretical_speedup']:.2f}x" in text and "1.00x" in text
    assert (tmp_path / "figures" / "accuracy_vs_flops.png").stat().st_size > 0


def test_a_timm_model_counts_what_its_layer_shapes_say():
    """timm's test_resnet (strided, grouped-free convs, a pooled head): each layer against its shapes, per example."""
    timm = pytest.importorskip("timm")
    model = timm.create_model("test_resnet", pretrained=False, num_classes=10).eval()
    targets = prunable_targets(model)
    expected: dict[str, int] = {}
    names = {t.weight.data_ptr(): t.name for t in targets}

    def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        name = names[module.weight.data_ptr()]
        if isinstance(module, torch.nn.Conv2d):
            per_output = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
            expected[name] = 2 * per_output * output[0].numel()
        else:
            expected[name] = 2 * module.in_features * output[0].numel()

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    forward = count_forward(model, torch.zeros(2, 3, 64, 64), targets)
    assert len(expected) == len(targets) > 10
    assert forward.per_layer == expected and forward.total == sum(expected.values())
