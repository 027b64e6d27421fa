"""The fake pynvml must offer what the plugin uses, exactly as the real nvidia-ml-py does.

The names are read from the plugin's source, so a new call in the sampler is
checked here without editing this file.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from fake_pynvml import FakeNvml

import prunekit_nvidia_mem.sampler as nvmod

real = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")
fake = FakeNvml().module


def used_names() -> set[str]:
    """Attributes the sampler reads from the pynvml module (``pynvml.X``, ``nvml.X``, ``self.lib.X``, ``lib.X``)."""
    tree = ast.parse(Path(nvmod.__file__).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        base = node.value
        if isinstance(base, ast.Name) and base.id in ("pynvml", "nvml", "lib"):
            names.add(node.attr)
        elif isinstance(base, ast.Attribute) and base.attr in ("_nvml", "lib"):
            names.add(node.attr)
    return names


NAMES = sorted(used_names())


def test_the_plugin_source_was_understood():
    assert {"nvmlInit", "nvmlShutdown", "nvmlDeviceGetMemoryInfo", "NVMLError", "NVMLLibraryMismatchError"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_name_exists_in_both_with_the_same_kind(name):
    assert hasattr(real, name), f"the plugin uses pynvml.{name}, which nvidia-ml-py does not have"
    assert hasattr(fake, name), f"the fake lacks pynvml.{name}"
    r, f = getattr(real, name), getattr(fake, name)
    if inspect.isclass(r):
        assert inspect.isclass(f)
        if issubclass(r, BaseException):
            assert issubclass(f, fake.NVMLError) == issubclass(r, real.NVMLError), f"{name}: NVMLError ancestry differs"
            assert issubclass(f, Exception)
    elif callable(r):
        assert callable(f)
        assert list(inspect.signature(f).parameters) == list(inspect.signature(r).parameters), name
        defaults_r = [p.default for p in inspect.signature(r).parameters.values()]
        defaults_f = [p.default for p in inspect.signature(f).parameters.values()]
        assert defaults_f == defaults_r, f"{name}: defaults differ"
    else:
        assert f == r, f"pynvml.{name}: fake {f!r} != real {r!r}"


def test_every_error_code_maps_to_the_same_class_name():
    codes = {k: v for k, v in vars(real).items() if k.startswith("NVML_ERROR_")}
    assert codes == {k: v for k, v in vars(fake).items() if k.startswith("NVML_ERROR_")}
    for code in codes.values():
        r, f = real.NVMLError(code), fake.NVMLError(code)
        assert type(r).__name__ == type(f).__name__
        assert r.value == f.value == code
        subclass = getattr(fake, type(f).__name__)
        assert isinstance(subclass(), subclass) and subclass().value == code  # subclass() takes no code
    assert not issubclass(fake.NVMLLibraryMismatchError, fake.NVMLError)


@pytest.mark.parametrize("structure", ["c_nvmlMemory_t", "c_nvmlMemory_v2_t", "c_nvmlUtilization_t", "c_nvmlProcessInfo_v2_t"])
def test_result_structures_have_the_real_fields(structure):
    assert getattr(fake, structure)._fields_ == getattr(real, structure)._fields_


def test_error_messages_match_for_the_codes_the_plugin_reports():
    for name in (
        "NVMLError_NotSupported",
        "NVMLError_GpuIsLost",
        "NVMLError_LibraryNotFound",
        "NVMLError_DriverNotLoaded",
        "NVMLError_NoPermission",
        "NVMLError_FunctionNotFound",
    ):
        assert str(getattr(fake, name)()) == str(getattr(real, name)())


def test_real_module_without_a_driver_fails_like_the_fake():
    """On this GPU-less machine the real nvmlInit raises what the fake's init_error mimics."""
    try:
        real.nvmlInit()
    except real.NVMLError as exc:
        code = exc.value
    else:  # a machine with a driver: nothing to compare
        real.nvmlShutdown()
        pytest.skip("NVML initialised: this machine has an NVIDIA driver")
    broken = FakeNvml(init_error=code).module
    with pytest.raises(broken.NVMLError) as caught:
        broken.nvmlInit()
    assert type(caught.value).__name__ == type(real.NVMLError(code)).__name__
