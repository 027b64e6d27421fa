"""Write an export file, and rebuild the plain model from one (the file is untrusted: checked before use)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from prunekit.core.plugins.loading import get_registry
from prunekit.core.rundir.files import atomic_path
from prunekit.errors import UsageError
from prunekit.export.formats import FORMATS, pack, unpack
from prunekit.export.source import FinalModel

KEY = "prunekit_export"


def write_export(final: FinalModel, fmt: str, out: Path) -> int:
    """Write ``final`` as ``fmt`` to ``out`` (atomically); return its size on disk in bytes."""
    if fmt == "nm" and final.n_of_m is None:
        raise UsageError("--format nm needs a run with --pruner-opt structure=N:M; use dense or sparse.")
    masks = {k: v for k, v in final.masks.items() if fmt != "nm" or k in final.covered}
    tensors, shapes = pack(final.state, masks, fmt, final.n_of_m)
    c, splits = final.resolved.config, final.built.splits
    meta = {
        "format": fmt,
        "shapes": shapes,
        "n_of_m": list(final.n_of_m) if final.n_of_m else None,
        "model": {
            "name": c.model,
            "options": final.resolved.model_opts,
            "num_classes": splits.num_classes,
            "in_channels": splits.in_channels,
            "image_size": splits.image_size,
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={KEY: json.dumps(meta)})
    return out.stat().st_size


def _meta(handle: Any, path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((handle.metadata() or {})[KEY])
        assert meta["format"] in FORMATS and isinstance(meta["shapes"], dict) and isinstance(meta["model"], dict)
        assert all(isinstance(s, list) and all(isinstance(d, int) and d >= 0 for d in s) for s in meta["shapes"].values())
        nm = meta.get("n_of_m")
        assert nm is None or (isinstance(nm, list) and len(nm) == 2 and 0 < nm[0] < nm[1] <= 256)
        assert meta["format"] != "nm" or nm is not None
    except (KeyError, ValueError, TypeError, AssertionError):
        raise UsageError(f"{path}: not a prunekit export (its {KEY} metadata is missing or malformed).") from None
    return dict(meta)


def load_model(path: Path | str) -> nn.Module:
    """The plain model an export file holds, in eval mode, on the CPU; UsageError if the file does not fit."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = _meta(handle, path)
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise UsageError(f"{path}: cannot read it as safetensors: {exc}.") from None
    spec = meta["model"]
    try:
        entry = get_registry().get("models", str(spec["name"]))
        extra = {"name": spec["name"]} if "*" in entry.name else {}
        model: nn.Module = entry.factory(
            int(spec["num_classes"]), int(spec["in_channels"]), int(spec["image_size"]), **extra, **dict(spec["options"])
        )
        nm = tuple(meta["n_of_m"]) if meta.get("n_of_m") else None
        state = unpack(tensors, meta["format"], meta["shapes"], nm)
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise UsageError(
            f"{path}: does not fit its model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}."
        ) from None
    return model.eval()
