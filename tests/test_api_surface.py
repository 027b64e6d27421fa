"""prunekit.api is frozen: its names and signatures change only on purpose.

A change to the surface fails this test until ``tests/api_surface.txt`` is updated
(regenerate it with ``python tests/test_api_surface.py > tests/api_surface.txt``),
``API_VERSION`` is raised and ``CHANGELOG.md`` says what changed.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import prunekit.api as api

ROOT = Path(__file__).resolve().parents[1]
FROZEN = Path(__file__).with_name("api_surface.txt")
_OWN = ("__init__", "__call__")
_SIMPLE = (str, int, float, tuple, dict, type(None))


def _signature(obj: object) -> str:
    try:
        return str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"


def _describe_class(name: str, cls: type) -> list[str]:
    bases = ", ".join(b.__name__ for b in cls.__bases__ if b is not object)
    lines = [f"class {name}({bases})"]
    protocol = getattr(cls, "_is_protocol", False)
    for attr, value in sorted(vars(cls).items()):
        if (attr.startswith("_") and attr not in _OWN) or (protocol and attr == "__init__"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if callable(value):
            lines.append(f"    {attr}{_signature(value)}")
        elif isinstance(value, property):
            lines.append(f"    {attr} (property)")
        elif isinstance(value, _SIMPLE):
            lines.append(f"    {attr} = {value!r}")
        else:
            lines.append(f"    {attr}: {type(value).__name__}")
    for attr, annotation in sorted(getattr(cls, "__annotations__", {}).items()):
        if not attr.startswith("_") and attr not in vars(cls):
            lines.append(f"    {attr}: {annotation}")
    return lines


def describe() -> str:
    """The public surface, one line per name, method or field."""
    lines = [f"API_VERSION = {api.API_VERSION!r}"]
    for name in sorted(api.__all__):
        obj = getattr(api, name)
        if name == "API_VERSION":
            continue
        if inspect.isclass(obj):
            lines += _describe_class(name, obj)
        elif inspect.isfunction(obj):
            lines.append(f"def {name}{_signature(obj)}")
        elif isinstance(obj, (*_SIMPLE, api.Option)):
            lines.append(f"{name}: {type(obj).__name__} = {obj!r}")
        else:
            lines.append(f"{name}: {type(obj).__name__}")
    return "\n".join(lines) + "\n"


def test_all_names_exist_and_nothing_public_is_unlisted():
    assert all(hasattr(api, n) for n in api.__all__)
    public = {n for n in vars(api) if not n.startswith("_") and n != "annotations"}
    assert public == set(api.__all__), f"names in prunekit.api but not in __all__: {sorted(public - set(api.__all__))}"


def test_the_surface_is_unchanged():
    now = describe()
    frozen = FROZEN.read_text(encoding="utf-8")
    assert now == frozen, (
        "prunekit.api changed. If on purpose: regenerate tests/api_surface.txt "
        "(python tests/test_api_surface.py > tests/api_surface.txt), raise API_VERSION and add a CHANGELOG.md entry."
    )


def test_the_changelog_records_this_api_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"API {api.API_VERSION}" in changelog


if __name__ == "__main__":
    print(describe(), end="")
