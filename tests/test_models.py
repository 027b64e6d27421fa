import pytest
import torch

from prunekit.builtin.models import lenet5, resnet18, resnet50, timm_model
from prunekit.core.sparsity.targets import prunable_targets
from prunekit.errors import UsageError


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_lenet5_matches_the_seed():
    model = lenet5(10, 1, 32)
    assert count(model) == 61_750
    targets = prunable_targets(model)
    assert [t.name for t in targets] == [
        "features.0.weight",
        "features.4.weight",
        "classifier.1.weight",
        "classifier.3.weight",
        "classifier.5.weight",
    ]
    assert sum(t.numel() for t in targets) == 61_470
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_lenet5_refuses_other_sizes():
    with pytest.raises(UsageError, match="32x32"):
        lenet5(10, 1, 28)


def test_resnet18_cifar_stem():
    model = resnet18(10, 3, 32)
    assert count(model) == 11_173_962
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_resnet50_imagenet_stem():
    model = resnet50(1000, 3, 224)
    assert count(model) == 25_557_032
    assert model.conv1.kernel_size == (7, 7)


def test_any_timm_model_by_name():
    model = timm_model(10, 3, 32, name="timm:resnet10t").eval()
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(UsageError, match="Unknown timm model 'nonexistent_net'"):
        timm_model(10, 3, 32, name="timm:nonexistent_net")
