"""What a checkpoint file may hold: the type and range of every field, and a digest of it all.

A checkpoint comes from disk and may have been damaged, copied from elsewhere or crafted:
:func:`problem` says, in a few words, what in a loaded checkpoint's fields is not what
prunekit writes (``None`` if nothing), and :func:`digest` is a BLAKE2b hash of every value
in it (tensors by dtype, shape and bytes), written with the checkpoint so that flipped or
altered bytes are detected on load instead of training on. The digest detects damage, not
intent: whoever can write the file can recompute it, so the fields are checked regardless.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import torch

from prunekit.core.rundir import layout as rundir

#: The run files a checkpoint records the length of (the only ones a resumed run cuts back).
APPEND_ONLY = (rundir.METRICS, rundir.TIMELINE)


def digest(data: dict[str, Any]) -> str:
    """BLAKE2b (hex) of every key and value of ``data`` but its ``digest``, in order; tensors by
    dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=32)
    _feed(h, {k: v for k, v in data.items() if k != "digest"})
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{value.dtype}{list(value.shape)}:".encode())
        h.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")
    elif isinstance(value, dict):
        h.update(f"D{len(value)}:".encode())
        for key, item in value.items():
            _feed(h, key)
            _feed(h, item)
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}:".encode())
        for item in value:
            _feed(h, item)
    else:
        text = repr(value).encode("utf-8", "backslashreplace")
        h.update(f"{type(value).__name__}{len(text)}:".encode() + text)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mapping(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def _rng_problem(rng: Any, where: str = "rng") -> str | None:
    if not _mapping(rng):
        return f"{where} is {type(rng).__name__}, not a mapping of generator states"
    python = rng.get("python")
    if not (
        isinstance(python, (list, tuple))
        and len(python) == 3
        and _count(python[0])
        and isinstance(python[1], (list, tuple))
        and all(_count(x) for x in python[1])
        and (python[2] is None or _number(python[2]))
    ):
        return f"{where}.python is not Python's random state (version, 625 integers, gauss)"
    if not isinstance(rng.get("torch"), torch.Tensor) or rng["torch"].dtype != torch.uint8:
        return f"{where}.torch is not torch's generator state (a uint8 tensor)"
    cuda, generators = rng.get("cuda", []), rng.get("generators", {})
    if not isinstance(cuda, (list, tuple)) or not all(isinstance(s, torch.Tensor) for s in cuda):
        return f"{where}.cuda is not a list of CUDA generator states"
    if not _mapping(generators) or not all(isinstance(s, torch.Tensor) for s in generators.values()):
        return f"{where}.generators is not a mapping of data generator states (tensors)"
    numpy_state = rng.get("numpy")
    if numpy_state is not None and not (
        _mapping(numpy_state)
        and isinstance(numpy_state.get("kind"), str)
        and isinstance(numpy_state.get("keys"), torch.Tensor)
        and _count(numpy_state.get("pos"))
        and _count(numpy_state.get("has_gauss"))
        and _number(numpy_state.get("cached"))
    ):
        return f"{where}.numpy is not NumPy's random state"
    return None


def _rank_problem(index: int, rank: Any) -> str | None:
    where = f"ranks[{index}]"
    if not _mapping(rank) or not _mapping(rank.get("loop")) or not _mapping(rank.get("samplers")):
        return f"{where} is not one rank's state (rng, loop, samplers)"
    return _rng_problem(rank.get("rng"), f"{where}.rng")


#: Each field's check and, for the message, what it must be.
_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "identity": (_mapping, "a mapping"),
    "epoch": (_count, "a whole number >= 0"),
    "step": (_count, "a whole number >= 0"),
    "batch": (_count, "a whole number >= 0"),
    "model": (_mapping, "a mapping of tensors"),
    "optimizer": (lambda v: isinstance(v, dict), "a mapping"),
    "pruner": (lambda v: isinstance(v, dict), "a mapping"),
    "scaler": (lambda v: v is None or isinstance(v, dict), "a mapping or None"),
    "loop": (_mapping, "a mapping"),
    "history": (lambda v: isinstance(v, list) and all(_mapping(r) for r in v), "a list of epoch records"),
    "samplers": (_mapping, "a mapping"),
    "files": (
        lambda v: _mapping(v) and set(v) <= set(APPEND_ONLY) and all(_count(n) for n in v.values()),
        f"a mapping of {' or '.join(APPEND_ONLY)} to byte lengths >= 0",
    ),
    "resumed_at_epochs": (lambda v: isinstance(v, list) and all(_count(e) for e in v), "a list of whole numbers >= 0"),
    "ranks": (lambda v: isinstance(v, list), "a list"),
    "digest": (lambda v: isinstance(v, str), "a string"),
}


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, (int, float, str, type(None), dict, list)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a loaded checkpoint (the rest of a sentence naming the file), ``None`` if nothing."""
    try:
        damaged = "digest" in data and data["digest"] != digest(data)
    except (RecursionError, TypeError, RuntimeError):  # nested too deep, a tensor NumPy cannot view
        damaged = True
    if damaged:
        return "is damaged: its contents do not match the digest written with them (flipped or altered bytes)"
    for name, (ok, expected) in _FIELDS.items():
        if name in data and not ok(data[name]):
            return f"is not a checkpoint prunekit wrote: its {name} is {_show(data[name])}, where prunekit writes {expected}"
    if not all(isinstance(v, torch.Tensor) for v in data["model"].values()):
        return "is not a checkpoint prunekit wrote: its model state holds values that are not tensors"
    found = _rng_problem(data["rng"])
    for index, rank in enumerate(data.get("ranks", [])):
        found = found or _rank_problem(index, rank)
    return f"is not a checkpoint prunekit wrote: {found}" if found else None


#: Settings a resumed run may have otherwise: where it is and how it is watched, not what it computes.
RESUME_FREE = (
    "out",
    "quiet",
    "device",
    "data_dir",
    "download",
    "workers",
    "samplers",
    "sample_interval",
    "checkpoint_every",
    "trackers",
    "tracker_opts",
    "group",
)


def run_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Of a run's resolved settings (``config.yaml``), those its checkpoint must match."""
    return {k: v for k, v in settings.items() if k not in RESUME_FREE}


def settings_mismatch(saved: Any, mine: dict[str, Any]) -> str | None:
    """How a checkpoint's recorded settings differ from this run's (the rest of a sentence naming
    the file), ``None`` if they match."""
    if not _mapping(saved):
        return "records no settings of the run that wrote it (an older prunekit's, or not this run's)"
    differ = next((k for k in sorted(set(saved) | set(mine)) if saved.get(k) != mine.get(k)), None)
    if differ is None:
        return None
    theirs, here = _show(saved.get(differ)), _show(mine.get(differ))
    return f"was written by a run with {differ} {theirs}, but this run has {differ} {here}: it is another run's"
