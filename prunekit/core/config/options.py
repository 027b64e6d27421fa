"""Declared, typed options for plugins (``--pruner-opt key=value``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prunekit.errors import UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One option a plugin accepts.

    ``type`` is ``int``, ``float``, ``str`` or ``bool``; ``choices`` restricts
    the allowed values; ``minimum`` is an inclusive and ``above`` an exclusive
    lower bound for numbers, ``maximum`` an inclusive upper bound. The core checks
    all of them, so a factory never validates its options again.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None

    def convert(self, value: Any, owner: str) -> Any:
        """Return ``value`` converted to this option's type, or raise UsageError."""
        where = f"Option '{self.name}' of {owner}"
        out: Any
        try:
            if self.type is bool:
                if isinstance(value, bool):
                    out = value
                elif str(value).strip().lower() in _TRUE:
                    out = True
                elif str(value).strip().lower() in _FALSE:
                    out = False
                else:
                    raise ValueError
            elif self.type is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                out = int(value)
            elif self.type is float:
                if isinstance(value, bool):
                    raise ValueError
                out = float(value)
                if not math.isfinite(out):
                    raise UsageError(f"{where} must be a finite number, got {value!r}.")
            else:
                out = self.type(value)
        except (TypeError, ValueError):
            raise UsageError(f"{where} must be {self.type.__name__}, got {value!r}.") from None
        if self.choices is not None and out not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise UsageError(f"{where} must be one of: {allowed}; got {value!r}.")
        if self.minimum is not None and not out >= self.minimum:
            raise UsageError(f"{where} must be at least {self.minimum}, got {value!r}.")
        if self.above is not None and not out > self.above:
            raise UsageError(f"{where} must be greater than {self.above}, got {value!r}.")
        if self.maximum is not None and not out <= self.maximum:
            raise UsageError(f"{where} must be at most {self.maximum}, got {value!r}.")
        return out


def parse_pairs(pairs: Iterable[str], flag: str) -> dict[str, str]:
    """Split ``key=value`` strings; a malformed one raises UsageError."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} expects key=value, got {pair!r}.")
        out[key.strip()] = value.strip()
    return out


def resolve_options(declared: Sequence[Option], given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Return every declared option with its default or converted given value.

    ``None`` given for an option whose default is ``None`` keeps that default,
    so resolved options (as ``config.yaml`` records them) resolve again.
    """
    by_name = {o.name: o for o in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        valid = ", ".join(by_name) or "none"
        raise UsageError(f"Unknown option '{unknown[0]}' for {owner}. Valid options: {valid}.")
    return {
        name: opt.convert(given[name], owner) if name in given and not (given[name] is None is opt.default) else opt.default
        for name, opt in by_name.items()
    }
