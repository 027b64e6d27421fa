"""Fake GPUs for the tests of device samplers: a vendor library and the devices torch sees."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import pytest


def install_fake_library(monkeypatch: pytest.MonkeyPatch, name: str, module: ModuleType, properties: Sequence[Any]) -> None:
    """Make ``import name`` give ``module`` (a fake vendor library) and torch see ``properties``
    as its devices 0..n-1 (``torch.cuda.get_device_properties``), renumbered as under
    ``CUDA_VISIBLE_DEVICES``/``HIP_VISIBLE_DEVICES`` while the library keeps its own order."""
    monkeypatch.setitem(sys.modules, name, module)

    def get_device_properties(index: int) -> Any:
        if not 0 <= index < len(properties):
            raise AssertionError(f"Invalid device id {index}")
        return properties[index]

    monkeypatch.setattr(torch.cuda, "get_device_properties", get_device_properties)
