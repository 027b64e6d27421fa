"""The fake amdsmi must offer what the plugin uses, exactly as the real package does.

``import amdsmi`` fails on a machine without libamd_smi.so, so the real package
is read as source (ast) from where pip installed it. The names are read from
the plugin's source, so a new call in the sampler is checked here without
editing this file.
"""

from __future__ import annotations

import ast
import enum
import importlib.util
import inspect
from pathlib import Path

import pytest
from fake_amdsmi import FakeAmdGpu, FakeAmdProcess, FakeAmdSmi

import prunekit_rocm_mem.sampler as rocmod

SPEC = importlib.util.find_spec("amdsmi")  # finds the package without executing it
if SPEC is None or SPEC.origin is None:
    pytest.skip("the amdsmi package is not installed", allow_module_level=True)
PKG = Path(SPEC.origin).parent

#: Used by the plugin for ROCm 6.0-6.1.1 only; absent from amdsmi 6.1.2 and later.
LEGACY = {"amdsmi_get_gpu_process_info": ["processor_handle", "process"]}


def parse(name: str) -> ast.Module:
    return ast.parse((PKG / name).read_text(encoding="utf-8"))


def real_exports() -> set[str]:
    return {a.asname or a.name for n in ast.walk(parse("__init__.py")) if isinstance(n, ast.ImportFrom) for a in n.names}


def wrapper_constants() -> dict[str, int]:
    out = {}
    for node in parse("amdsmi_wrapper.py").body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, int):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def definitions(module: str) -> dict[str, ast.AST]:
    return {n.name: n for n in parse(module).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


INTERFACE = definitions("amdsmi_interface.py")
EXCEPTIONS = definitions("amdsmi_exception.py")
CONSTANTS = wrapper_constants()
EXPORTS = real_exports()


def used_names() -> tuple[set[str], set[tuple[str, str]]]:
    """Names the plugin reads from amdsmi, and (enum, member) pairs."""
    tree = ast.parse(Path(rocmod.__file__).read_text(encoding="utf-8"))

    def is_module(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id in ("smi", "amdsmi", "lib")) or (
            isinstance(node, ast.Attribute) and node.attr in ("_smi", "lib")
        )

    names, members = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_module(node.value):
            names.add(node.attr)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and is_module(node.value.value):
            members.add((node.value.attr, node.attr))
    return names, members


NAMES, MEMBERS = used_names()
fake = FakeAmdSmi(api="6.0").module  # the 6.0 shape has every function, the legacy one included


def test_the_plugin_source_was_understood():
    assert {"amdsmi_init", "amdsmi_shut_down", "amdsmi_get_gpu_memory_usage", "AmdSmiLibraryException"} <= NAMES
    assert ("AmdSmiMemoryType", "VRAM") in MEMBERS


def params(fn: ast.FunctionDef) -> list[str]:
    return [a.arg for a in fn.args.args]


@pytest.mark.parametrize("name", sorted(NAMES))
def test_name_exists_in_both_with_the_same_shape(name):
    assert hasattr(fake, name), f"the fake lacks amdsmi.{name}"
    if name in LEGACY:
        assert list(inspect.signature(getattr(fake, name)).parameters) == LEGACY[name]
        return
    assert name in EXPORTS, f"the plugin uses amdsmi.{name}, which the installed amdsmi does not export"
    f = getattr(fake, name)
    if name in INTERFACE and isinstance(INTERFACE[name], ast.FunctionDef):
        real = INTERFACE[name]
        assert list(inspect.signature(f).parameters) == params(real), name
        real_defaults = [ast.unparse(d) for d in real.args.defaults]
        fake_defaults = [
            f"{type(p.default).__name__}.{p.default.name}" if isinstance(p.default, enum.Enum) else repr(p.default)
            for p in inspect.signature(f).parameters.values()
            if p.default is not inspect.Parameter.empty
        ]
        assert fake_defaults == real_defaults, name
    elif name in EXCEPTIONS:
        real = EXCEPTIONS[name]
        assert [ast.unparse(b) for b in real.bases] == [b.__name__ for b in f.__bases__], f"{name}: bases differ"
        init = next((n for n in real.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is not None:
            assert list(inspect.signature(f.__init__).parameters) == params(init), name
    else:
        assert name in INTERFACE and issubclass(f, enum.IntEnum), f"{name}: unexpected kind"


@pytest.mark.parametrize("enum_name, member", sorted(MEMBERS))
def test_enum_members_have_the_real_values(enum_name, member):
    real = INTERFACE[enum_name]
    values = {}
    for node in real.body:
        if isinstance(node, ast.Assign):
            values[node.targets[0].id] = CONSTANTS[node.value.attr]
    assert int(getattr(getattr(fake, enum_name), member)) == values[member]


def test_every_fake_enum_member_exists_in_the_real_enum_with_the_same_value():
    for name in ("AmdSmiInitFlags", "AmdSmiMemoryType", "AmdSmiTemperatureType", "AmdSmiTemperatureMetric"):
        real = {n.targets[0].id: CONSTANTS[n.value.attr] for n in INTERFACE[name].body if isinstance(n, ast.Assign)}
        for member, value in getattr(fake, name).__members__.items():
            assert real[member] == int(value), f"{name}.{member}"


def real_dict_keys(function: str) -> set[str]:
    """Every string key of the dict literals a real function builds."""
    keys = set()
    for node in ast.walk(INTERFACE[function]):
        if isinstance(node, ast.Dict):
            keys |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return keys


def flat_keys(value) -> set[str]:
    if isinstance(value, list):
        return set().union(*(flat_keys(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set(value) | set().union(*(flat_keys(v) for v in value.values()))
    return set()


@pytest.mark.parametrize(
    "function", ["amdsmi_get_gpu_vram_usage", "amdsmi_get_gpu_activity", "amdsmi_get_power_info", "amdsmi_get_gpu_process_list"]
)
def test_result_dicts_have_the_real_keys(function):
    smi = FakeAmdSmi([FakeAmdGpu(processes=[FakeAmdProcess(1, 1)])])  # current (6.1.2+) shape
    smi.module.amdsmi_init()
    handle = smi.module.amdsmi_get_processor_handles()[0]
    assert flat_keys(getattr(smi.module, function)(handle)) == real_dict_keys(function)


def test_legacy_process_info_is_really_gone_from_the_current_shape():
    assert not hasattr(FakeAmdSmi(api="6.1.2").module, "amdsmi_get_gpu_process_info")


def test_real_import_fails_like_the_simulation(capfd):
    """Where libamd_smi.so is missing, the real import raises KeyError as fake_amdsmi.library_missing does."""
    import sys

    from fake_amdsmi import library_missing

    saved = sys.modules.pop("amdsmi", None)
    try:
        import amdsmi  # noqa: F401
    except KeyError as exc:
        real_error = exc
    else:
        pytest.skip("libamd_smi.so is present on this machine")
    finally:
        for key in [k for k in sys.modules if k == "amdsmi" or k.startswith("amdsmi.")]:
            del sys.modules[key]
        if saved is not None:
            sys.modules["amdsmi"] = saved
    with library_missing(), pytest.raises(KeyError) as simulated:
        import amdsmi  # noqa: F401,F811
    assert simulated.value.args == real_error.args == ("libamd_smi.so",)
