"""Built-in models: LeNet-5, timm ResNets (CIFAR stem for small inputs) and any timm model."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from prunekit.api import Option, Register, UsageError, hookimpl

CIFAR_STEM_MAX_SIZE = 64


class LeNet5(nn.Module):
    """LeNet-5 as in the AdamWPrune seed: two 5x5 convs with batch norm, 400-120-84-N.

    61,750 parameters for 10 classes and 1x32x32 inputs.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),
            nn.BatchNorm2d(6),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x))
        return out


#: What a timm model name is (``resnet34``, ``vit_tiny_patch16_224.augreg_in21k``).
_TIMM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def lenet5(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    if image_size != 32:
        raise UsageError(f"Model 'lenet5' needs 32x32 inputs; the dataset gives {image_size}x{image_size}.")
    return LeNet5(num_classes, in_channels)


def _timm(name: str, num_classes: int, in_channels: int, image_size: int, **options: float) -> nn.Module:
    """A timm model for this data: built for ``image_size`` when its constructor takes ``img_size``.

    ``options`` (``drop_rate``, ``drop_path_rate``) are passed on when not 0.
    """
    import timm  # heavy: imported only when a timm model is built

    kwargs: dict[str, Any] = {"pretrained": False, "num_classes": num_classes, "in_chans": in_channels}
    kwargs |= {k: v for k, v in options.items() if v}
    try:
        try:
            model = timm.create_model(name, img_size=image_size, **kwargs)
        except TypeError as exc:  # a model without an input-size argument (CNNs)
            if "img_size" not in str(exc):
                raise
            model = timm.create_model(name, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise UsageError(f"Unknown timm model '{name}'. See timm.list_models() for names.") from None
        raise
    except TypeError as exc:
        given = ", ".join(sorted(k for k in options if options[k])) or "none"
        raise UsageError(f"timm model '{name}' cannot be built with these options ({given}): {exc}.") from None
    if image_size <= CIFAR_STEM_MAX_SIZE and hasattr(model, "conv1") and hasattr(model, "maxpool"):
        _use_cifar_stem(model, in_channels)
    return model


def _use_cifar_stem(model: nn.Module, in_channels: int) -> None:
    """Replace the ImageNet stem (7x7/2 conv + max-pool) by a 3x3/1 conv, no pool."""
    old = model.conv1
    if not isinstance(old, nn.Conv2d):  # deep-stem variants keep their stem
        return
    model.conv1 = nn.Conv2d(in_channels, old.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()


def resnet18(num_classes: int, in_channels: int, image_size: int, **options: float) -> nn.Module:
    return _timm("resnet18", num_classes, in_channels, image_size, **options)


def resnet50(num_classes: int, in_channels: int, image_size: int, **options: float) -> nn.Module:
    return _timm("resnet50", num_classes, in_channels, image_size, **options)


def timm_model(num_classes: int, in_channels: int, image_size: int, name: str, **options: float) -> nn.Module:
    timm_name = name.split(":", 1)[1]
    if not _TIMM_NAME.fullmatch(timm_name):  # hf-hub:..., local-dir:...: timm would fetch or read a model elsewhere
        raise UsageError(
            f"Model '{name}': a timm model name is letters, digits and '_.-' (e.g. timm:resnet34); "
            "hf-hub: and local-dir: sources are not supported (no pretrained weights, nothing downloaded)."
        )
    return _timm(timm_name, num_classes, in_channels, image_size, **options)


TIMM_OPTIONS = (
    Option("drop_rate", float, 0.0, "dropout before the classifier (timm drop_rate)", minimum=0.0),
    Option("drop_path_rate", float, 0.0, "stochastic depth rate (timm drop_path_rate), where the model has it", minimum=0.0),
)


@hookimpl
def register_models(register: Register) -> None:
    register("lenet5", lenet5, description="LeNet-5 with batch norm (61,750 parameters, 32x32 inputs)", weight_decay=1e-4)
    register(
        "resnet18",
        resnet18,
        description="timm ResNet-18; CIFAR stem for inputs <= 64 px",
        options=TIMM_OPTIONS,
        weight_decay=5e-4,
    )
    register(
        "resnet50",
        resnet50,
        description="timm ResNet-50; CIFAR stem for inputs <= 64 px",
        options=TIMM_OPTIONS,
        weight_decay=5e-4,
    )
    register(
        "timm:*",
        timm_model,
        description="any timm model, e.g. timm:resnet34 or timm:vit_tiny_patch16_224 "
        "(no pretrained weights; built for the dataset's image size where the model takes one)",
        options=TIMM_OPTIONS,
        weight_decay=5e-4,
    )
