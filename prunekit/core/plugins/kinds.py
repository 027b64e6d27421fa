"""What each kind of registration is: the factory's call, its metadata and their types.

The one owner of these facts. :func:`check_registration` runs when a plugin calls
``register``: metadata of the wrong type, options given to a kind that takes none,
and declared options that do not match the factory's signature (names and
defaults) are plugin errors, shown by ``prunekit plugins``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prunekit.core.config.options import Option
from prunekit.core.measure.sampling import SCOPES

OPTION_TYPES = (int, float, str, bool)


@dataclass(frozen=True)
class Meta:
    """One metadata key: its default, a check of a given value, and what it must be."""

    default: Any
    check: Callable[[Any], bool]
    expected: str
    convert: Callable[[Any], Any] = lambda value: value


def _number(minimum: float, *, allow_none: bool = False, above: bool = False) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if value is None:
            return allow_none
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return value > minimum if above else value >= minimum

    return check


def _names(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(v, str) and v for v in value)


def _optional_name(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(value))


_NAMES = "a tuple of names such as ('exp_avg', 'exp_avg_sq')"


@dataclass(frozen=True)
class Kind:
    """One kind of registration (``models``, ``pruners`` ...)."""

    name: str
    #: Positional arguments the core passes to every factory of this kind.
    positional: tuple[str, ...]
    #: Keyword arguments the core passes besides the options.
    keywords: tuple[str, ...] = ()
    #: Whether users can give options (``--pruner-opt k=v``) to this kind.
    takes_options: bool = False
    metadata: Mapping[str, Meta] = field(default_factory=dict)

    @property
    def singular(self) -> str:
        return self.name[:-1]

    def call(self) -> str:
        """The factory call, for messages: ``factory(targets, **options)``."""
        parts = [*self.positional, *(f"{k}=" for k in self.keywords)]
        if self.takes_options:
            parts.append("**options")
        return f"factory({', '.join(parts)})"


KIND_SPECS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "models",
            ("num_classes", "in_channels", "image_size"),
            takes_options=True,
            metadata={"weight_decay": Meta(5e-4, _number(0.0), "a number >= 0")},
        ),
        Kind("datasets", ("data_dir", "download", "seed"), takes_options=True),
        Kind(
            "optimizers",
            ("param_groups",),
            ("lr", "weight_decay", "epochs", "steps_per_epoch"),
            takes_options=True,
            metadata={
                "lr": Meta(1e-3, _number(0.0, above=True), "a number > 0"),
                "weight_decay": Meta(None, _number(0.0, allow_none=True), "None or a number >= 0"),
                "state": Meta((), _names, _NAMES, tuple),
                "default_pruner": Meta(None, _optional_name, "None or a pruner name"),
            },
        ),
        Kind(
            "pruners",
            ("targets",),
            takes_options=True,
            metadata={
                "requires": Meta((), _names, _NAMES, tuple),
                "dense": Meta(False, lambda v: isinstance(v, bool), "True or False"),
                # schedules it supports (default all); the first is the default when a run names none
                "schedules": Meta((), _names, _NAMES, tuple),
                # False: its mechanism cannot run under torch.compile; `--compile` refuses it
                "compiles": Meta(True, lambda v: isinstance(v, bool), "True or False"),
            },
        ),
        Kind(
            "samplers",
            ("device",),
            metadata={"scope": Meta("process", lambda v: v in SCOPES, f"one of {', '.join(SCOPES)}")},
        ),
        Kind(
            "trackers",
            (),
            takes_options=True,
            metadata={"credentials": Meta((), _names, "a tuple of environment variable names", tuple)},
        ),
    )
}

KINDS = tuple(KIND_SPECS)


def check_registration(
    kind: str, name: str, factory: Any, options: Sequence[Any], metadata: Mapping[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    """``(problem, metadata with defaults)``; ``problem`` is None for a valid registration."""
    spec = KIND_SPECS[kind]
    allowed = spec.metadata
    unknown = sorted(set(metadata) - set(allowed))
    if unknown:
        return f"unknown metadata {unknown}; valid: {sorted(allowed) or 'none'}", {}
    merged: dict[str, Any] = {}
    for key, meta in allowed.items():
        value = metadata.get(key, meta.default)
        if not meta.check(value):
            return f"metadata {key}={value!r} must be {meta.expected}", {}
        merged[key] = meta.convert(value)
    if not callable(factory):
        return "factory is not callable", {}
    if options and not spec.takes_options:
        return f"{kind} take no options (the core calls {spec.call()}); drop options=", {}
    problem = _check_options(options) or _check_signature(spec, name, factory, options)
    return problem, merged


def _check_options(options: Sequence[Any]) -> str | None:
    if isinstance(options, (Option, str)) or not all(isinstance(o, Option) for o in options):
        return "options must be a tuple of prunekit.api.Option"
    names = [o.name for o in options]
    if len(set(names)) != len(names):
        return f"options declared twice: {sorted({n for n in names if names.count(n) > 1})}"
    for o in options:
        if o.type not in OPTION_TYPES:
            return f"option '{o.name}' has type {o.type!r}; valid: int, float, str, bool"
        if o.default is not None:
            try:
                o.convert(o.default, "the declaration")
            except Exception as exc:
                return f"option '{o.name}': its default is invalid ({exc})"
    return None


def _check_signature(spec: Kind, name: str, factory: Any, options: Sequence[Option]) -> str | None:
    """Declared options must be exactly the factory's further parameters, with the same defaults."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a callable whose signature Python cannot tell: trust it
        return None
    keywords = (*spec.keywords, "name") if spec.name == "models" and "*" in name else spec.keywords
    params = signature.parameters
    try:
        fixed = signature.bind_partial(*spec.positional, **{k: k for k in keywords})
    except TypeError as exc:
        return f"the core calls {spec.call()}, which this factory cannot accept ({exc})"
    rest = {
        n: p
        for n, p in params.items()
        if n not in fixed.arguments and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)
    }
    open_ended = any(p.kind == p.VAR_KEYWORD for p in params.values())
    declared = {o.name: o for o in options}
    missing = [n for n in declared if n not in rest and not open_ended]
    if missing:
        return f"declared option '{missing[0]}' is not a parameter of the factory (it accepts: {', '.join(rest) or 'none'})"
    undeclared = [n for n in rest if n not in declared]
    if undeclared:
        return f"factory parameter '{undeclared[0]}' is not a declared option; declare it with Option or remove it"
    for n, option in declared.items():
        default = rest[n].default if n in rest else inspect.Parameter.empty
        if default is not inspect.Parameter.empty and default != option.default:
            return f"option '{n}' defaults to {option.default!r} but the factory's default is {default!r}; keep one value"
    return None
