"""prunekit: benchmark neural-network pruning during training.

Plugins implement the hooks in :mod:`prunekit.hookspecs` and mark them with
:data:`hookimpl`. :class:`Sparsifier` (imported on first use) prunes inside your own
training loop.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pluggy

try:
    __version__ = version("prunekit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

hookimpl = pluggy.HookimplMarker("prunekit")

__all__ = ["Sparsifier", "__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    if name == "Sparsifier":  # imported lazily: ``import prunekit`` stays light, and plugins importing it see no cycle
        from prunekit.sparsifier import Sparsifier

        return Sparsifier
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")
