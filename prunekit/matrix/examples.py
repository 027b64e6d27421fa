"""The example specs shipped in ``prunekit/examples/*.yaml``."""

from __future__ import annotations

from importlib import resources
from typing import Any

from prunekit.errors import UsageError
from prunekit.matrix.spec import MatrixSpec, spec_from_text


def names() -> list[str]:
    folder = resources.files("prunekit") / "examples"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def text(name: str) -> str:
    """The YAML text of example ``name``; UsageError listing the examples if unknown."""
    if name not in names():
        raise UsageError(f"Unknown example '{name}'. Available: {', '.join(names()) or 'none'}.")
    return (resources.files("prunekit") / "examples" / f"{name}.yaml").read_text(encoding="utf-8")


def load(name: str, overrides: dict[str, Any] | None = None) -> MatrixSpec:
    return spec_from_text(text(name), f"example '{name}'", name, overrides)
