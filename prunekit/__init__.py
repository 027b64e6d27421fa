"""prunekit: benchmark neural-network pruning during training.

Plugins implement the hooks in :mod:`prunekit.hookspecs` and mark them with
:data:`hookimpl`.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("prunekit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

hookimpl = pluggy.HookimplMarker("prunekit")

__all__ = ["__version__", "hookimpl"]
