"""Reading YAML that someone else may have written: bounded in size and in expansion,
duplicate keys refused, and only regular files opened (never a FIFO or a device)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from prunekit.errors import UsageError

#: The most bytes a config, spec or run directory's YAML may hold.
MAX_BYTES = 1 << 20
#: The most values (mapping entries and list items, an alias counted each time it is used).
MAX_VALUES = 100_000


class TooLarge(ValueError):
    """A YAML document that expands to more than :data:`MAX_VALUES` values."""


def read_text(path: Path, what: str) -> str:
    """A regular file's UTF-8 text, at most :data:`MAX_BYTES`; UsageError (one line) otherwise.

    ``what`` names the file in messages, e.g. ``"Config file"``.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read {what.lower()} {path}: {exc.strerror or exc}.") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"Cannot read {what.lower()} {path}: it is a directory; give a YAML file.")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{what} {path} is not a regular file; give a YAML file.")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # swapped for a FIFO since the stat: no hang
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise UsageError(f"{what} {path} is not a regular file; give a YAML file.")
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"Cannot read {what.lower()} {path}: {exc.strerror or exc}.") from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"{what} {path} is larger than {MAX_BYTES:,} bytes; a YAML file of settings is far smaller.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8."
        ) from None


class StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML has no type stubs here
    """Safe YAML whose mappings refuse a repeated key (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *base``: the keys after it may override the base's
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader says so itself
            if repeated:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def check_size(data: Any, limit: int = MAX_VALUES) -> Any:
    """``data`` unchanged, or :class:`TooLarge` if walking it (shared parts counted each
    time, as anything using it would see them) meets more than ``limit`` values."""
    count = 0
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            count += len(item)
            stack.extend(item)
        if count > limit:
            raise TooLarge(f"it expands to more than {limit:,} values (YAML aliases?)")
    return data


def load(text: str, loader: type[yaml.SafeLoader] = StrictLoader) -> Any:
    """Parse ``text`` with ``loader`` (a :class:`StrictLoader` subclass) and bound its size.

    Raises ``yaml.YAMLError`` (syntax, duplicate key) or :class:`TooLarge`.
    """
    return check_size(yaml.load(text, Loader=loader))  # noqa: S506 (a SafeLoader subclass)


def describe_error(exc: Exception) -> str:
    """What is wrong, to follow a file's name: ``is not valid YAML at line L, column C: problem``."""
    if isinstance(exc, TooLarge):
        return f"is refused: {exc}"
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"is not valid YAML{at}: {problem}"
