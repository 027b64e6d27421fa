"""Stable run ids: a readable prefix plus a hash of the resolved config."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from prunekit.core.config.settings import TRACKING_FIELDS, RunConfig

#: Fields that do not change what a run computes.
EXCLUDED = ("out", "quiet", "checkpoint_every", *TRACKING_FIELDS)
#: Fields added after the first release, hashed only when not at this default
#: (so existing run ids, and resuming existing matrices, do not change).
ADDED_LATER: dict[str, Any] = {"model_opts": {}, "compile": False, "channels_last": False}
HASH_LENGTH = 10


def canonical(config: RunConfig | dict[str, Any]) -> str:
    """Sorted-key compact JSON of the config without the fields in :data:`EXCLUDED`."""
    data = config.to_dict() if isinstance(config, RunConfig) else dict(config)
    data = {k: v for k, v in data.items() if k not in EXCLUDED and not (k in ADDED_LATER and v == ADDED_LATER[k])}
    if "workers" in data and data["workers"] is None:  # the default was 0 before it became "from the cores": same ids
        data["workers"] = 0
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: RunConfig | dict[str, Any]) -> str:
    """First ``HASH_LENGTH`` hex digits of the SHA-256 of :func:`canonical`."""
    return hashlib.sha256(canonical(config).encode()).hexdigest()[:HASH_LENGTH]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def run_id(config: RunConfig) -> str:
    """``<model>-<dataset>-<optimizer>-<pruner>-s<sparsity %>-seed<seed>-<hash>``."""
    pruner = config.pruner or "default"
    prefix = f"{config.model}-{config.dataset}-{config.optimizer}-{pruner}-s{100 * config.sparsity:.4g}-seed{config.seed}"
    return f"{_safe(prefix)}-{config_hash(config)}"
